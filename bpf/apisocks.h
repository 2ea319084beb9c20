/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-socket state of API-server sockets, shared by bpf/sockops.bpf.c (which creates entries at connect() and keeps
 * them) and bpf/traffic.bpf.c (which, during the handoff after an upgrade, skips sockets that have one).
 *
 * api_socks: SK_STORAGE (pinned by name), struct api_sock per API socket, freed with the socket.
 * Minimum kernel: 5.2 (sk_storage). Include after common.h. */
#ifndef FANOUT_APISOCKS_H
#define FANOUT_APISOCKS_H

#define FANOUT_SOCK_SYN_RTO 1u /* a SYN of this socket was retransmitted */
#define FANOUT_SOCK_EGRESS_CB 2u /* egress callbacks are enabled (waiting for a response that came after a pure ACK) */

struct api_sock {
	__u64 cgroup_id;    /* the pod's cgroup, captured at connect() (process context) */
	__u64 req_start_ns; /* the outstanding request's first byte (boot ns); 0 = none outstanding */
	/* The socket's cumulative counters already folded into traffic_counters. */
	__u64 rx_bytes;     /* bytes_received */
	__u64 tx_bytes;     /* bytes_sent (payload, retransmissions included, like the cgroup_skb design) */
	__u32 rx_segments;  /* data_segs_in */
	__u32 rx_packets;   /* segs_in */
	__u32 tx_segments;  /* data_segs_out */
	__u32 tx_packets;   /* segs_out */
	__u32 pure_in;      /* segs_in - data_segs_in at the last callback: segments without payload received */
	__u32 req_rx_mark;  /* data_segs_in when the outstanding request started */
	__u32 flags;        /* FANOUT_SOCK_* */
	__u32 slot;         /* the cgroup's api_slot (bpf/sockops.bpf.c) at connect(); 0 = none: count by cgroup id */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct api_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_socks SEC(".maps");

#endif /* FANOUT_APISOCKS_H */
