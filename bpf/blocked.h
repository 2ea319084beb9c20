/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The kill switch's block list, shared by every fanout BPF object of one agent instance (pinned by name under the
 * instance pin dir, so each object that includes this header opens the same maps).
 *
 * blocked:        key = pod-level cgroup id (__u64), value = struct blocked_entry. Written by user space only
 *                 (collector/blockmap, used by the agent and `fanoutctl node`). An entry blocks while
 *                 expires_boot_ns == 0 or bpf_ktime_get_boot_ns() < expires_boot_ns, so a TTL holds even when the
 *                 agent is dead.
 * blocked_active: ARRAY of one __u32: nonzero when `blocked` may hold entries. Writers set it to 1 before inserting
 *                 and reset it to 0 only after observing `blocked` empty; the kernel side skips the ancestor walk
 *                 while it is 0, which keeps the common case (nothing blocked) to one array lookup.
 * Minimum kernel: 5.8 (bpf_ktime_get_boot_ns; ancestor cgroup id helpers from 4.19/5.7).
 * Include after vmlinux.h and bpf/bpf_helpers.h. */
#ifndef FANOUT_BLOCKED_H
#define FANOUT_BLOCKED_H

#define FANOUT_MAX_CGROUP_LEVELS 16
#define FANOUT_MAX_BLOCKED 16384

struct blocked_entry {
	__u64 expires_boot_ns;
	__u32 workload_hash;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FANOUT_MAX_BLOCKED);
	__type(key, __u64);
	__type(value, struct blocked_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} blocked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} blocked_active SEC(".maps");

static __always_inline int fanout_block_list_active(void)
{
	__u32 zero = 0;
	__u32 *active = bpf_map_lookup_elem(&blocked_active, &zero);
	return active && *active;
}

/* fanout_entry_blocks returns the blocked cgroup id when the entry for id blocks now, else 0. */
static __always_inline __u64 fanout_entry_blocks(__u64 id)
{
	struct blocked_entry *e;

	if (!id)
		return 0;
	e = bpf_map_lookup_elem(&blocked, &id);
	if (!e)
		return 0;
	if (e->expires_boot_ns && bpf_ktime_get_boot_ns() >= e->expires_boot_ns)
		return 0;
	return id;
}

/* fanout_current_blocked: for sock_addr/sock programs (process context). Returns the blocking ancestor's cgroup id,
 * or 0. */
static __always_inline __u64 fanout_current_blocked(void)
{
	__u64 hit;
	int level;

	if (!fanout_block_list_active())
		return 0;
	for (level = 1; level < FANOUT_MAX_CGROUP_LEVELS; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			break;
		hit = fanout_entry_blocks(id);
		if (hit)
			return hit;
	}
	return 0;
}

/* fanout_skb_blocked: for cgroup_skb programs. Returns the blocking ancestor's cgroup id of the skb's socket cgroup,
 * or 0. */
static __always_inline __u64 fanout_skb_blocked(struct __sk_buff *skb)
{
	__u64 hit;
	int level;

	if (!fanout_block_list_active())
		return 0;
	for (level = 1; level < FANOUT_MAX_CGROUP_LEVELS; level++) {
		__u64 id = bpf_skb_ancestor_cgroup_id(skb, level);
		if (!id)
			break;
		hit = fanout_entry_blocks(id);
		if (hit)
			return hit;
	}
	return 0;
}

#endif /* FANOUT_BLOCKED_H */
