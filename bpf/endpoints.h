/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* API-server endpoint set, shared by every fanout BPF object of one agent instance (pinned by name under the
 * instance pin dir, so each object that includes this header opens the same maps). Written by user space only
 * (collector/probe: Probe.SetEndpoints).
 *
 * api_endpoints: HASH, key = struct api_endpoint_key {addr, port, family}, value = struct api_endpoint_value.
 *                IPv4 addresses sit in addr[0] (network byte order), addr[1..3] = 0. port is in HOST byte order;
 *                port 0 matches any port of that address. Holds ClusterIPs and real endpoints.
 * api_filter:    ARRAY of one struct api_filter_value: two 2048-bit prefilters so that traffic to other destinations
 *                leaves after one inlined array lookup and a bit test, without hashing a 20-byte key:
 *                exact[] has bit fanout_hash_exact(addr, port) set for every entry with port != 0,
 *                any[]   has bit fanout_hash_any(addr) set for every entry with port == 0.
 *                User space sets bits before inserting entries and clears them only after deleting entries.
 *                Hashes (u32 arithmetic, mirrored in collector/probe/filter.go):
 *                  fold  = addr[0] ^ addr[1] ^ addr[2] ^ addr[3]  (addr words as loaded little-endian)
 *                  any   = (fold * 0x9E3779B1) >> 21
 *                  exact = ((fold + port * 0x85EBCA6B) * 0x9E3779B1) >> 21
 *                bit h is bit (h & 63) of word (h >> 6).
 *                fast4[] holds up to FANOUT_FAST_V4 IPv4 port-specific endpoints (addr as in the key, port in host
 *                order; addr 0 = unused slot) that are ALSO in api_endpoints: a hit there skips the hash lookup
 *                (one cache line instead of jhash + bucket + element). It is always a subset of api_endpoints:
 *                user space removes an entry from fast4 before deleting it from the hash, and adds it after.
 * Minimum kernel: 4.10 (cgroup_skb); the maps themselves need nothing newer.
 * Include after common.h. */
#ifndef FANOUT_ENDPOINTS_H
#define FANOUT_ENDPOINTS_H

#define FANOUT_MAX_ENDPOINTS 1024
#define FANOUT_FILTER_WORDS 32 /* 32 * 64 = 2048 bits = 1 << 11 */
#define FANOUT_FILTER_SHIFT 21 /* 32 - 11 */
#define FANOUT_FAST_V4 8

struct api_endpoint_key {
	__u32 addr[4];
	__u16 port;
	__u8 family;
	__u8 _pad;
};

struct api_endpoint_value {
	__u32 flags; /* FANOUT_ENDPOINT_* */
};

#define FANOUT_ENDPOINT_CLUSTER_IP 1u /* a Service ClusterIP (before NAT) rather than a real endpoint */

struct api_fast_v4 {
	__u32 addr;
	__u16 port;
	__u16 _pad;
};

struct api_filter_value {
	__u64 exact[FANOUT_FILTER_WORDS];
	__u64 any[FANOUT_FILTER_WORDS];
	struct api_fast_v4 fast4[FANOUT_FAST_V4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FANOUT_MAX_ENDPOINTS);
	__type(key, struct api_endpoint_key);
	__type(value, struct api_endpoint_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct api_filter_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_filter SEC(".maps");

static __always_inline __u32 fanout_hash_any(__u32 fold)
{
	return (fold * 0x9E3779B1u) >> FANOUT_FILTER_SHIFT;
}

static __always_inline __u32 fanout_hash_exact(__u32 fold, __u16 port)
{
	return ((fold + (__u32)port * 0x85EBCA6Bu) * 0x9E3779B1u) >> FANOUT_FILTER_SHIFT;
}

static __always_inline int fanout_bit(const __u64 *words, __u32 h)
{
	return (words[(h >> 6) & (FANOUT_FILTER_WORDS - 1)] >> (h & 63)) & 1;
}

/* fanout_api_match reports whether (family, addr, port) is an API-server endpoint. addr holds 4 words for IPv6,
 * addr[0] only for IPv4 (the others must be 0). port in host byte order; 0 when the protocol has no ports. */
static __always_inline int fanout_api_match(__u8 family, __u32 a0, __u32 a1, __u32 a2, __u32 a3, __u16 port)
{
	__u32 zero = 0, fold = a0 ^ a1 ^ a2 ^ a3;
	struct api_filter_value *f;
	int exact, any;

	f = bpf_map_lookup_elem(&api_filter, &zero);
	if (!f)
		return 0;
	exact = port && fanout_bit(f->exact, fanout_hash_exact(fold, port));
	any = fanout_bit(f->any, fanout_hash_any(fold));
	if (!exact && !any)
		return 0;

	if (exact && family == AF_INET) {
#pragma unroll
		for (int i = 0; i < FANOUT_FAST_V4; i++) {
			if (f->fast4[i].addr == a0 && f->fast4[i].port == port)
				return 1;
		}
	}

	struct api_endpoint_key key = {
		.addr = {a0, a1, a2, a3},
		.port = port,
		.family = family,
	};
	if (exact && bpf_map_lookup_elem(&api_endpoints, &key))
		return 1;
	if (!any)
		return 0;
	key.port = 0;
	return bpf_map_lookup_elem(&api_endpoints, &key) != 0;
}

/* For cgroup/connect4|6 and sendmsg4|6 programs. The verifier rejects reading user_ip6 in a *4 program (and
 * user_ip4 in a *6 one), so there is one helper per family (there is no family-generic fanout_api_match_sock_addr).
 * fanout_api_match_sock_addr6 matches IPv4-mapped destinations (::ffff:a.b.c.d, dual-stack sockets) as IPv4. */
static __always_inline int fanout_api_match_sock_addr4(struct bpf_sock_addr *ctx)
{
	return fanout_api_match(AF_INET, ctx->user_ip4, 0, 0, 0, bpf_ntohs((__u16)ctx->user_port));
}

static __always_inline int fanout_api_match_sock_addr6(struct bpf_sock_addr *ctx)
{
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];

	if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff))
		return fanout_api_match(AF_INET, a3, 0, 0, 0, port);
	return fanout_api_match(AF_INET6, a0, a1, a2, a3, port);
}

#endif /* FANOUT_ENDPOINTS_H */
