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
 * Maps (pinned by name under the instance pin dir):
 *   traffic_counters: LRU_PERCPU_HASH, key = cgroup id (__u64), value = struct cgroup_traffic (monotonic, per CPU;
 *                     user space sums CPUs and computes deltas). LRU bounds memory; evictions show as
 *                     stats[FANOUT_STAT_COUNTER_INSERTS] growing faster than the entry count.
 *   traffic_stats:    PERCPU_ARRAY of __u64 indexed by FANOUT_STAT_*: map pressure.
 *   api_endpoints, api_filter: bpf/endpoints.h.   blocked, blocked_active: bpf/blocked.h.
 *
 * Minimum kernel: 5.8 (bpf_ktime_get_boot_ns via blocked.h; LRU_PERCPU_HASH 4.10, bpf_skb_cgroup_id 4.18,
 * BPF links for cgroups 5.7). */
#include "common.h"
#include "endpoints.h"
#include "blocked.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define FANOUT_MAX_CGROUPS 16384

struct cgroup_traffic {
	__u64 tx_packets;
	__u64 rx_packets;
	__u64 tx_bytes;    /* payload bytes sent */
	__u64 rx_bytes;    /* payload bytes received */
	__u64 tx_segments; /* egress skbs carrying payload: the request-rate proxy */
	__u64 rx_segments;
	__u64 connects;    /* connect() calls to an API endpoint */
	__u64 tx_dropped;  /* egress packets dropped because the cgroup is blocked */
};

enum fanout_stat {
	FANOUT_STAT_COUNTER_INSERTS = 0,   /* new cgroup entries inserted into traffic_counters */
	FANOUT_STAT_COUNTER_INSERT_FAILED, /* insert failed (map full / no memory): the packet went uncounted */
	FANOUT_STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, FANOUT_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct cgroup_traffic);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} traffic_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FANOUT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} traffic_stats SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&traffic_stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct cgroup_traffic *counters_for(__u64 id)
{
	struct cgroup_traffic *c = bpf_map_lookup_elem(&traffic_counters, &id);
	if (c)
		return c;
	struct cgroup_traffic zero = {};
	if (bpf_map_update_elem(&traffic_counters, &id, &zero, BPF_NOEXIST) == 0)
		stat_inc(FANOUT_STAT_COUNTER_INSERTS);
	c = bpf_map_lookup_elem(&traffic_counters, &id);
	if (!c)
		stat_inc(FANOUT_STAT_COUNTER_INSERT_FAILED);
	return c;
}

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

SEC("cgroup_skb/egress")
int fanout_egress(struct __sk_buff *skb)
{
	__u32 m = match_packet(skb, 1);
	struct cgroup_traffic *c;

	if (!m)
		return FANOUT_SK_PASS;
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

	if (!m)
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
