//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* fanout kill switch: deny connect() to API-server endpoints from blocked pods.
 *
 * Programs (attached with BPF links at the node's pods cgroup, next to the traffic probe's programs; the links are
 * pinned under the instance pin dir so that enforcement survives the agent):
 *   cgroup/connect4, cgroup/connect6: when the block list may hold entries (blocked_active), the destination is in
 *       api_endpoints (IPv4-mapped IPv6 matched as IPv4) and an ancestor of the current cgroup is blocked (bpf/blocked.h),
 *       return 0: connect() fails with EPERM. Denials are counted per blocked (pod-level) cgroup id.
 *
 * Maps (pinned by name under the instance pin dir):
 *   enforce_denied: LRU_PERCPU_HASH, key = blocked cgroup id (__u64), value = __u64 connects denied (monotonic, per
 *                   CPU; user space sums CPUs).
 *   api_endpoints, api_filter: bpf/endpoints.h.   blocked, blocked_active: bpf/blocked.h.
 *
 * Minimum kernel: 5.8 (bpf_ktime_get_boot_ns via blocked.h; bpf_get_current_ancestor_cgroup_id 5.7, cgroup BPF
 * links 5.7, LRU_PERCPU_HASH 4.10). */
#include "common.h"
#include "endpoints.h"
#include "blocked.h"

char __license[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, FANOUT_MAX_BLOCKED);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} enforce_denied SEC(".maps");

static __always_inline int enforce_connect(int api)
{
	__u64 id, one = 1, *n;

	if (!api)
		return 1;
	id = fanout_current_blocked();
	if (!id)
		return 1;
	n = bpf_map_lookup_elem(&enforce_denied, &id);
	if (n)
		*n += 1; /* per-CPU value: no atomic needed */
	else
		bpf_map_update_elem(&enforce_denied, &id, &one, BPF_NOEXIST);
	return 0;
}

SEC("cgroup/connect4")
int fanout_enforce_connect4(struct bpf_sock_addr *ctx)
{
	/* Cheapest test first: nothing blocked on this node is the common case. */
	if (!fanout_block_list_active())
		return 1;
	return enforce_connect(fanout_api_match_sock_addr4(ctx));
}

SEC("cgroup/connect6")
int fanout_enforce_connect6(struct bpf_sock_addr *ctx)
{
	if (!fanout_block_list_active())
		return 1;
	return enforce_connect(fanout_api_match_sock_addr6(ctx));
}
