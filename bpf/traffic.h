/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-cgroup API-server traffic counters, shared by the traffic probe's two designs (bpf/traffic.bpf.c: cgroup_skb on
 * every packet, the fallback; bpf/sockops.bpf.c: per-socket callbacks of API sockets only). Both objects pin these
 * maps by name under the instance pin dir, so switching designs (or upgrading from the cgroup_skb layout) keeps the
 * counters.
 *
 * traffic_counters: PERCPU_HASH, key = cgroup id (__u64), value = struct cgroup_traffic (monotonic, per CPU; user
 *                   space sums CPUs and computes deltas). Not LRU: nothing is evicted silently. When a new cgroup
 *                   finds the map full its counts go to key FANOUT_OVERFLOW_CGROUP (0, never a real cgroup id; user
 *                   space creates it at load so it always exists) and stats[FANOUT_STAT_COUNTER_INSERT_FAILED]
 *                   grows. User space deletes the keys of cgroups that are gone (collector/agent).
 * traffic_stats:    PERCPU_ARRAY of __u64 indexed by FANOUT_STAT_*: map pressure.
 * Include after common.h. */
#ifndef FANOUT_TRAFFIC_H
#define FANOUT_TRAFFIC_H

#define FANOUT_OVERFLOW_CGROUP 0
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
	FANOUT_STAT_COUNTER_INSERT_FAILED, /* insert failed (map full / no memory): counted in the overflow bucket */
	FANOUT_STAT_HANDOFF_PACKETS,       /* packets the cgroup_skb programs counted during a handoff */
	FANOUT_STAT_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
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

static __always_inline __attribute__((unused)) struct cgroup_traffic *counters_for(__u64 id)
{
	struct cgroup_traffic *c = bpf_map_lookup_elem(&traffic_counters, &id);
	if (c)
		return c;
	struct cgroup_traffic zero = {};
	if (bpf_map_update_elem(&traffic_counters, &id, &zero, BPF_NOEXIST) == 0)
		stat_inc(FANOUT_STAT_COUNTER_INSERTS);
	c = bpf_map_lookup_elem(&traffic_counters, &id);
	if (c)
		return c;
	/* Map full (or no memory): count the cgroup in the node's overflow bucket instead of losing it. */
	stat_inc(FANOUT_STAT_COUNTER_INSERT_FAILED);
	id = FANOUT_OVERFLOW_CGROUP;
	return bpf_map_lookup_elem(&traffic_counters, &id);
}

#endif /* FANOUT_TRAFFIC_H */
