/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-socket state of API-server sockets, shared by bpf/sockops.bpf.c (which creates entries at connect() and keeps
 * them) and bpf/traffic.bpf.c (which, during the handoff after an upgrade, skips sockets that have one).
 *
 * api_socks: SK_STORAGE (pinned by name), struct api_sock per API socket, freed with the socket.
 * Minimum kernel: 5.2 (sk_storage). Include after common.h. */
#ifndef FANOUT_APISOCKS_H
#define FANOUT_APISOCKS_H

#define FANOUT_SOCK_SYN_RTO 1u /* a SYN of this socket was retransmitted */

struct api_sock {
	__u64 cgroup_id;    /* the pod's cgroup, captured at connect() (process context) */
	__u64 req_start_ns; /* first egress payload of the outstanding request; 0 = none */
	__u64 req_rx_mark;  /* bytes_received when that request started */
	__u64 rx_bytes;     /* bytes_received, data_segs_in, segs_in already folded into traffic_counters */
	__u32 rx_segments;
	__u32 rx_packets;
	__u32 flags;        /* FANOUT_SOCK_* */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct api_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_socks SEC(".maps");

#endif /* FANOUT_APISOCKS_H */
