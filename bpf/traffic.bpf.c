// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* fanout traffic probe: per-cgroup API-server traffic counters.
 *
 * Programs (attached with BPF links at the node's pods cgroup; they see every descendant cgroup):
 *   cgroup_skb/egress, cgroup_skb/ingress: for packets whose remote end (egress: destination, ingress: source) is in
 *       api_endpoints, count packets, payload bytes (IP length minus IP and TCP/UDP headers) and payload segments
 *       (skbs with payload; egress sees skbs before GSO) per socket cgroup id (bpf_skb_cgroup_id). Other packets
 *       leave after the api_filter prefilter. Egress drops (and counts) matching packets of blocked cgroups
 *       (bpf/blocked.h): the kill switch's last line once a connection is established.
 *   cgroup/connect4, cgroup/connect6: count connect() calls to API-server endpoints per current cgroup id. Always
 *       allow (the kill switch denies in its own program).
 *
 * This is the fallback design (kernels where bpf/sockops.bpf.c does not load) and, with handoff set, the bridge
 * that keeps counting API sockets opened before an upgrade to the per-socket design until they are gone.
 *
 * Maps (pinned by name under the instance pin dir):
 *   traffic_counters, traffic_stats: bpf/traffic.h.   api_socks: bpf/apisocks.h.
 *   api_endpoints, api_filter: bpf/endpoints.h.   blocked, blocked_active: bpf/blocked.h.
 *
 * Minimum kernel: 5.8 (bpf_ktime_get_boot_ns via blocked.h; LRU_PERCPU_HASH 4.10, bpf_skb_cgroup_id 4.18,
 * BPF links for cgroups 5.7). */
#include "common.h"
#include "endpoints.h"
#include "blocked.h"
#include "traffic.h"
#include "apisocks.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* match_packet returns the payload length + 1 of an API-server packet (so 0 means "not API traffic"). */
static __always_inline __u32 match_packet(struct __sk_buff *skb, int egress)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 hdr, proto, a0, a1 = 0, a2 = 0, a3 = 0;
	__u16 port = 0;
	__u8 family;

	if (skb->protocol == bpf_htons(FANOUT_ETH_P_IP)) {
		__u8 *ip = data;
		if ((void *)(ip + 20) > data_end)
			return 0;
		hdr = (ip[0] & 0x0f) * 4;
		if (hdr < 20)
			return 0;
		proto = ip[9];
		a0 = egress ? *(__u32 *)(ip + 16) : *(__u32 *)(ip + 12);
		family = AF_INET;
	} else if (skb->protocol == bpf_htons(FANOUT_ETH_P_IPV6)) {
		__u32 *ip6 = data;
		if ((void *)(ip6 + 10) > data_end)
			return 0;
		hdr = 40;
		proto = ((__u8 *)data)[6];
		if (egress) {
			a0 = ip6[6]; a1 = ip6[7]; a2 = ip6[8]; a3 = ip6[9];
		} else {
			a0 = ip6[2]; a1 = ip6[3]; a2 = ip6[4]; a3 = ip6[5];
		}
		family = AF_INET6;
	} else {
		return 0;
	}

	if (proto == FANOUT_IPPROTO_TCP || proto == FANOUT_IPPROTO_UDP) {
		__u8 *l4 = data + (hdr & 0x3c); /* 20..60 for IPv4, 40 for IPv6 */
		if ((void *)(l4 + 8) > data_end)
			return 0;
		port = bpf_ntohs(egress ? *(__u16 *)(l4 + 2) : *(__u16 *)l4);
		if (!fanout_api_match(family, a0, a1, a2, a3, port))
			return 0;
		if (proto == FANOUT_IPPROTO_TCP) {
			if ((void *)(l4 + 13) > data_end)
				return 0;
			hdr = (hdr & 0x3c) + ((l4[12] >> 4) & 0x0f) * 4;
		} else {
			hdr = (hdr & 0x3c) + 8;
		}
	} else if (!fanout_api_match(family, a0, a1, a2, a3, 0)) {
		return 0;
	}
	return skb->len > hdr ? skb->len - hdr + 1 : 1;
}

/* handoff is set at load when the per-socket design (sockops.bpf.c) runs and these programs only stay attached for
 * API sockets opened before it: a socket that sockops.bpf.c counts (it has an api_socks entry) is skipped here. */
volatile const __u32 handoff = 0;

/* counted_by_sockops reports whether the per-socket design counts this skb's socket (handoff only). */
static __always_inline int counted_by_sockops(struct __sk_buff *skb)
{
	struct bpf_sock *sk;

	if (!handoff)
		return 0;
	sk = skb->sk;
	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 0;
	if (bpf_sk_storage_get(&api_socks, sk, 0, 0))
		return 1;
	stat_inc(FANOUT_STAT_HANDOFF_PACKETS);
	return 0;
}

SEC("cgroup_skb/egress")
int fanout_egress(struct __sk_buff *skb)
{
	__u32 m = match_packet(skb, 1);
	struct cgroup_traffic *c;

	if (!m)
		return FANOUT_SK_PASS;
	if (counted_by_sockops(skb)) {
		if (fanout_skb_blocked(skb))
			return FANOUT_SK_DROP;
		return FANOUT_SK_PASS;
	}
	c = counters_for(bpf_skb_cgroup_id(skb));
	if (fanout_skb_blocked(skb)) {
		if (c)
			c->tx_dropped++;
		return FANOUT_SK_DROP;
	}
	if (c) {
		c->tx_packets++;
		c->tx_bytes += m - 1;
		c->tx_segments += m > 1;
	}
	return FANOUT_SK_PASS;
}

SEC("cgroup_skb/ingress")
int fanout_ingress(struct __sk_buff *skb)
{
	__u32 m = match_packet(skb, 0);
	struct cgroup_traffic *c;

	if (!m || counted_by_sockops(skb))
		return FANOUT_SK_PASS;
	c = counters_for(bpf_skb_cgroup_id(skb));
	if (c) {
		c->rx_packets++;
		c->rx_bytes += m - 1;
		c->rx_segments += m > 1;
	}
	return FANOUT_SK_PASS;
}

static __always_inline int count_connect(int match)
{
	struct cgroup_traffic *c;

	if (!match)
		return 1;
	c = counters_for(bpf_get_current_cgroup_id());
	if (c)
		c->connects++;
	return 1;
}

SEC("cgroup/connect4")
int fanout_connect4(struct bpf_sock_addr *ctx)
{
	return count_connect(fanout_api_match_sock_addr4(ctx));
}

SEC("cgroup/connect6")
int fanout_connect6(struct bpf_sock_addr *ctx)
{
	return count_connect(fanout_api_match_sock_addr6(ctx));
}
