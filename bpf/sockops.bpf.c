// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* fanout traffic probe, per-socket design: API-server traffic, response latency and connection outcomes per cgroup,
 * with nothing on the path of other packets, and (on kernels >= 6.10) about one program run per request/response
 * on API sockets.
 *
 * Programs (attached with BPF links at the node's pods cgroup; they see every descendant cgroup):
 *   cgroup/connect4, cgroup/connect6: for connect() to an API endpoint (api_endpoints), count the connect for the
 *       current cgroup (the pod's: connect runs in the caller's context) and give the socket an api_socks entry
 *       holding that cgroup id. Always allow (the kill switch denies in its own program, which runs first).
 *   sockops: runs on TCP connection events of every socket in the subtree (per connection, never per packet). A
 *       socket without an api_socks entry leaves after one socket-storage lookup. For API sockets it enables
 *       per-socket callbacks at TCP_CONNECT_CB (these then run for this socket only):
 *         RTT_CB: an ACK of new data arrived. Counting: every callback folds the socket's cumulative counters
 *             (bytes_sent, bytes_received, data segments and segments in and out) as deltas into the cgroup's
 *             counters, so no callback is needed per packet and the counts are exact whichever callbacks ran;
 *             STATE_CB at close flushes the rest. Latency (kernels >= 6.10 pass the RTT sample, mrtt, as args[0]):
 *             when the ACK carries data (no segment without payload arrived since the last callback), the
 *             response answered the request it acknowledges: mrtt is the time from that request's first byte to
 *             the response's first byte. When it is a pure ACK (the API server acknowledged the request before
 *             answering it: a slow answer), the request's start (now - mrtt) is kept and egress callbacks are
 *             enabled until the answer comes.
 *         HDR_OPT_LEN_CB (egress skbs, only while egress callbacks are enabled; reserves no option space): when
 *             data arrived since the request started (the ACK this socket sends for it, at most 2 ms later: the
 *             socket's delayed-ACK ceiling is lowered with TCP_BPF_DELACK_MAX), the request ends. On kernels
 *             without mrtt (mrtt_in_rtt_cb = 0), egress callbacks stay enabled and a request starts at its first
 *             egress payload, as in the first version of this design.
 *         PARSE_HDR_OPT_CB (ingress skbs on the slow path only): a packet with payload ends the outstanding request.
 *         STATE_CB: a socket closing from SYN_SENT is a failed connect (and a timeout when the SYN had to be
 *             retransmitted or the kernel gave up with ETIMEDOUT); closing with ECONNRESET/EPIPE is a reset.
 *         RTO_CB: retransmission timeouts of established connections (in SYN_SENT: marks the connect as timing out).
 *
 * Maps (pinned by name under the instance pin dir):
 *   traffic_counters, traffic_stats: bpf/traffic.h (shared with the cgroup_skb design).
 *   api_health: HASH, key = cgroup id (__u64), value = struct cgroup_health (monotonic; updated with atomic adds:
 *               events are per request, not per packet). Sized like traffic_counters; a cgroup that finds it full
 *               goes to key 0 (the overflow bucket, created by user space), like traffic_counters.
 *   api_socks:  bpf/apisocks.h.
 *   Slots, so that the per-response path needs no hash lookup: a cgroup's first API connect takes a slot index from
 *   api_free_slots and records it in api_cgroup_slots and api_slot_owner; its sockets keep the index (api_sock.slot)
 *   and fold counters and latency into api_slot_values[slot] (array lookups, inlined by the verifier). A cgroup that
 *   finds no free slot, and a socket whose slot was released (owner changed: its cgroup is gone), count through
 *   traffic_counters / api_health by cgroup id as before. User space sums both per cgroup.
 *     api_free_slots:   QUEUE of __u32, the free slot indexes (filled by user space with 1..max-1; 0 = no slot).
 *     api_cgroup_slots: HASH, key = cgroup id, value = __u32 slot.
 *     api_slot_owner:   ARRAY of __u64, the cgroup id a slot belongs to (0 = free). User space releases a slot of a
 *                       cgroup that is gone: delete its api_cgroup_slots entry, zero owner and values, push it back.
 *     api_slot_values:  PERCPU_ARRAY of struct api_slot (monotonic per CPU while owned; plain adds).
 *   api_endpoints, api_filter: bpf/endpoints.h.
 *
 * Minimum kernel: 5.10 (header-option callbacks 5.10, sk_storage in sock_addr programs 5.10, bpf_skc_to_tcp_sock
 * 5.9 with kernel BTF for sk_err and bytes_sent via CO-RE); 6.10 for one run per request (mrtt in RTT_CB). User
 * space falls back to traffic.bpf.c when this object does not load. */
#include "common.h"
#include "endpoints.h"
#include "traffic.h"
#include "apisocks.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define FANOUT_LATENCY_BUCKETS 28 /* 2^27 us ~ 134 s: the last bucket holds everything above */

/* TCP states (include/net/tcp_states.h) and errnos, not in UAPI headers usable here. */
#define FANOUT_TCP_ESTABLISHED 1
#define FANOUT_TCP_SYN_SENT 2
#define FANOUT_TCP_CLOSE 7
#define FANOUT_EPIPE 32
#define FANOUT_ECONNRESET 104
#define FANOUT_ETIMEDOUT 110
#define FANOUT_SOL_TCP 6
#define FANOUT_TCP_BPF_DELACK_MAX 1003

struct cgroup_health {
	__u64 latency[FANOUT_LATENCY_BUCKETS]; /* responses per log2 microsecond bucket */
	__u64 latency_sum_us;
	__u64 failed_connects;     /* API connects that never established */
	__u64 connect_timeouts;    /* of those: SYN retransmitted or ETIMEDOUT */
	__u64 resets;              /* established API connections reset (ECONNRESET/EPIPE) */
	__u64 retransmit_timeouts; /* RTOs on established API connections */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FANOUT_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, struct cgroup_health);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_health SEC(".maps");

#define FANOUT_API_SLOTS 256 /* default; user space sizes the four slot maps alike */

struct api_slot {
	struct cgroup_traffic traffic; /* connects and tx_dropped stay 0: counted in traffic_counters */
	__u64 latency[FANOUT_LATENCY_BUCKETS];
	__u64 latency_sum_us;
};

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, FANOUT_API_SLOTS);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_free_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FANOUT_API_SLOTS);
	__type(key, __u64);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_cgroup_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FANOUT_API_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_slot_owner SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FANOUT_API_SLOTS);
	__type(key, __u32);
	__type(value, struct api_slot);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} api_slot_values SEC(".maps");

/* slot_for returns the cgroup's slot, taking a free one on its first API connect; 0 when none is free. */
static __always_inline __u32 slot_for(__u64 id)
{
	__u32 *v = bpf_map_lookup_elem(&api_cgroup_slots, &id);
	__u64 *owner;
	__u32 slot;

	if (v)
		return *v;
	if (bpf_map_pop_elem(&api_free_slots, &slot) || !slot)
		return 0;
	if (bpf_map_update_elem(&api_cgroup_slots, &id, &slot, BPF_NOEXIST)) {
		/* Another connect of the cgroup won the race (or the map is full): give the slot back. */
		bpf_map_push_elem(&api_free_slots, &slot, 0);
		v = bpf_map_lookup_elem(&api_cgroup_slots, &id);
		return v ? *v : 0;
	}
	owner = bpf_map_lookup_elem(&api_slot_owner, &slot);
	if (!owner)
		return 0;
	*owner = id;
	return slot;
}

/* slot_of returns the socket's slot values, or NULL: count by cgroup id (no slot, or its cgroup released it). */
static __always_inline struct api_slot *slot_of(struct api_sock *s)
{
	__u32 k = s->slot;
	__u64 *owner;

	if (!k)
		return 0;
	owner = bpf_map_lookup_elem(&api_slot_owner, &k);
	if (!owner || *owner != s->cgroup_id)
		return 0;
	return bpf_map_lookup_elem(&api_slot_values, &k);
}

/* Only the fields we read, relocated against the running kernel's structs (CO-RE). */
struct sock___fanout {
	int sk_err;
} __attribute__((preserve_access_index));

struct tcp_sock___fanout {
	__u64 bytes_sent;
} __attribute__((preserve_access_index));

/* Set by user space: the kernel passes the RTT sample to RTT_CB (>= 6.10). */
volatile const __u32 mrtt_in_rtt_cb = 0;

#define FANOUT_CB_BASE (BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG | \
			BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG)
#define FANOUT_CB_EGRESS (FANOUT_CB_BASE | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)

static __always_inline struct cgroup_health *health_for(__u64 id)
{
	struct cgroup_health *h = bpf_map_lookup_elem(&api_health, &id);
	if (h)
		return h;
	struct cgroup_health zero = {};
	bpf_map_update_elem(&api_health, &id, &zero, BPF_NOEXIST);
	h = bpf_map_lookup_elem(&api_health, &id);
	if (h)
		return h;
	id = FANOUT_OVERFLOW_CGROUP;
	return bpf_map_lookup_elem(&api_health, &id);
}

static __always_inline int connect_common(struct bpf_sock_addr *ctx, int match)
{
	struct cgroup_traffic *c;
	struct api_sock *s;
	__u64 id;

	if (!match)
		return 1;
	id = bpf_get_current_cgroup_id();
	c = counters_for(id);
	if (c)
		c->connects++;
	if (ctx->type != 1 /* SOCK_STREAM */)
		return 1;
	s = bpf_sk_storage_get(&api_socks, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (s) {
		struct api_sock fresh = {.cgroup_id = id, .slot = slot_for(id)};
		*s = fresh; /* a socket may connect again after a failed connect */
	}
	return 1;
}

SEC("cgroup/connect4")
int fanout_sockops_connect4(struct bpf_sock_addr *ctx)
{
	return connect_common(ctx, fanout_api_match_sock_addr4(ctx));
}

SEC("cgroup/connect6")
int fanout_sockops_connect6(struct bpf_sock_addr *ctx)
{
	return connect_common(ctx, fanout_api_match_sock_addr6(ctx));
}

static __always_inline __u32 log2_bucket(__u64 us)
{
	__u32 r = 0;

	if (us >> 32) { us >>= 32; r += 32; }
	if (us >> 16) { us >>= 16; r += 16; }
	if (us >> 8) { us >>= 8; r += 8; }
	if (us >> 4) { us >>= 4; r += 4; }
	if (us >> 2) { us >>= 2; r += 2; }
	if (us >> 1) { r += 1; }
	return r < FANOUT_LATENCY_BUCKETS - 1 ? r : FANOUT_LATENCY_BUCKETS - 1;
}

static __always_inline void record_latency(struct api_sock *s, struct api_slot *v, __u64 us)
{
	struct cgroup_health *h;
	__u32 idx = log2_bucket(us);

	if (v) { /* per CPU */
		if (idx < FANOUT_LATENCY_BUCKETS)
			v->latency[idx]++;
		v->latency_sum_us += us;
		return;
	}
	h = health_for(s->cgroup_id);
	if (!h)
		return;
	if (idx < FANOUT_LATENCY_BUCKETS)
		__sync_fetch_and_add(&h->latency[idx], 1);
	__sync_fetch_and_add(&h->latency_sum_us, us);
}

/* read_bytes_sent stores the socket's payload bytes sent so far in *out; it leaves *out alone when the kernel's
 * socket can't be read. */
static __always_inline void read_bytes_sent(struct bpf_sock_ops *ctx, __u64 *out)
{
	struct bpf_sock *sk = ctx->sk;
	struct tcp_sock___fanout *tp;

	if (!sk)
		return;
	tp = (struct tcp_sock___fanout *)bpf_skc_to_tcp_sock(sk);
	if (tp)
		*out = tp->bytes_sent;
}

/* fold adds what the socket sent and received since the last callback (the kernel's cumulative counters) to the
 * cgroup's counters: exact whichever callbacks ran. It also notes how many segments without payload arrived so far,
 * which tells the next RTT callback whether its ACK carried data. */
static __always_inline void fold(struct bpf_sock_ops *ctx, struct api_sock *s, struct api_slot *v)
{
	__u64 rx = ctx->bytes_received, tx = s->tx_bytes;
	__u32 rseg = ctx->data_segs_in, rpkt = ctx->segs_in, tseg = ctx->data_segs_out, tpkt = ctx->segs_out;
	struct cgroup_traffic *c;

	read_bytes_sent(ctx, &tx);
	s->pure_in = rpkt - rseg;
	if (rx == s->rx_bytes && rpkt == s->rx_packets && tpkt == s->tx_packets && tx == s->tx_bytes)
		return;
	c = v ? &v->traffic : counters_for(s->cgroup_id);
	if (c) {
		c->rx_bytes += rx - s->rx_bytes;
		c->rx_segments += (__u32)(rseg - s->rx_segments);
		c->rx_packets += (__u32)(rpkt - s->rx_packets);
		c->tx_bytes += tx - s->tx_bytes;
		c->tx_segments += (__u32)(tseg - s->tx_segments);
		c->tx_packets += (__u32)(tpkt - s->tx_packets);
	}
	s->rx_bytes = rx;
	s->rx_segments = rseg;
	s->rx_packets = rpkt;
	s->tx_bytes = tx;
	s->tx_segments = tseg;
	s->tx_packets = tpkt;
}

static __always_inline void set_egress_cb(struct bpf_sock_ops *ctx, struct api_sock *s, int on)
{
	if (!mrtt_in_rtt_cb || !!(s->flags & FANOUT_SOCK_EGRESS_CB) == on)
		return;
	if (bpf_sock_ops_cb_flags_set(ctx, on ? FANOUT_CB_EGRESS : FANOUT_CB_BASE) == 0)
		s->flags ^= FANOUT_SOCK_EGRESS_CB;
}

/* end_if_answered ends the outstanding request when data arrived since it started. */
static __always_inline void end_if_answered(struct bpf_sock_ops *ctx, struct api_sock *s, struct api_slot *v)
{
	if (!s->req_start_ns || ctx->data_segs_in == s->req_rx_mark)
		return;
	record_latency(s, v, (bpf_ktime_get_ns() - s->req_start_ns) / 1000);
	s->req_start_ns = 0;
	set_egress_cb(ctx, s, 0);
}

static __always_inline void on_egress(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	struct api_slot *v;

	if (!ctx->skb_tcp_flags)
		return;
	v = slot_of(s);
	end_if_answered(ctx, s, v);
	/* Without mrtt, a request starts at its first egress payload (skb_len: before the TCP header is pushed). */
	if (!mrtt_in_rtt_cb && ctx->skb_len && !s->req_start_ns) {
		s->req_start_ns = bpf_ktime_get_ns();
		s->req_rx_mark = ctx->data_segs_in;
	}
	fold(ctx, s, v);
}

static __always_inline void on_rtt(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	__u32 pure = ctx->segs_in - ctx->data_segs_in;
	long mrtt = (long)ctx->args[0];
	struct api_slot *v = slot_of(s);

	if (ctx->state != FANOUT_TCP_ESTABLISHED) {
		fold(ctx, s, v);
		return;
	}
	if (s->req_start_ns) {
		end_if_answered(ctx, s, v);
	} else if (mrtt_in_rtt_cb && mrtt >= 0) {
		if (pure == s->pure_in) {
			/* The ACK carried data (it was queued before the ACK was processed): the answer to the acked request. */
			record_latency(s, v, mrtt);
		} else {
			/* A pure ACK: the request was received, its answer is still to come. */
			s->req_start_ns = bpf_ktime_get_ns() - (__u64)mrtt * 1000;
			s->req_rx_mark = ctx->data_segs_in;
			set_egress_cb(ctx, s, 1);
		}
	}
	fold(ctx, s, v);
}

/* on_parse runs for ingress packets that take the slow path: a packet with payload ends the outstanding request at
 * once (data_segs_in already counts it). */
static __always_inline void on_parse(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	__u32 len = ctx->skb_len, hdr;

	if (!s->req_start_ns)
		return;
	hdr = (__u32)((long)ctx->skb_data_end - (long)ctx->skb_data); /* skb->data is the TCP header */
	if (len > hdr) {
		record_latency(s, slot_of(s), (bpf_ktime_get_ns() - s->req_start_ns) / 1000);
		s->req_start_ns = 0;
		set_egress_cb(ctx, s, 0);
	}
}

static __always_inline int sock_err(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sock___fanout *ks;

	if (!sk)
		return 0;
	ks = (struct sock___fanout *)bpf_skc_to_tcp_sock(sk);
	if (!ks)
		return 0;
	return ks->sk_err;
}

static __always_inline void on_state(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	struct cgroup_health *h;
	struct api_slot *v;
	__u32 from = ctx->args[0], to = ctx->args[1];
	int err;

	if (to != FANOUT_TCP_CLOSE)
		return;
	v = slot_of(s);
	end_if_answered(ctx, s, v);
	fold(ctx, s, v);
	err = sock_err(ctx);
	if (from == FANOUT_TCP_SYN_SENT) {
		h = health_for(s->cgroup_id);
		if (!h)
			return;
		__sync_fetch_and_add(&h->failed_connects, 1);
		if ((s->flags & FANOUT_SOCK_SYN_RTO) || err == FANOUT_ETIMEDOUT)
			__sync_fetch_and_add(&h->connect_timeouts, 1);
		return;
	}
	if (err == FANOUT_ECONNRESET || err == FANOUT_EPIPE) {
		h = health_for(s->cgroup_id);
		if (h)
			__sync_fetch_and_add(&h->resets, 1);
	}
}

static __always_inline void on_rto(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	struct cgroup_health *h;

	if (ctx->state == FANOUT_TCP_SYN_SENT) {
		s->flags |= FANOUT_SOCK_SYN_RTO;
		return;
	}
	h = health_for(s->cgroup_id);
	if (h)
		__sync_fetch_and_add(&h->retransmit_timeouts, 1);
}

SEC("sockops")
int fanout_sockops(struct bpf_sock_ops *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct api_sock *s;

	if (!sk)
		return 1;
	/* tcp_current_mss() asks every sendmsg for option space: no packet, nothing to do (cheapest exit first). */
	if (ctx->op == BPF_SOCK_OPS_HDR_OPT_LEN_CB && ctx->args[0] == BPF_WRITE_HDR_TCP_CURRENT_MSS)
		return 1;
	s = bpf_sk_storage_get(&api_socks, sk, 0, 0);
	if (!s)
		return 1; /* not an API socket */
	switch (ctx->op) {
	case BPF_SOCK_OPS_RTT_CB:
		on_rtt(ctx, s);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_egress(ctx, s);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		on_parse(ctx, s);
		break;
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (bpf_sock_ops_cb_flags_set(ctx, mrtt_in_rtt_cb ? FANOUT_CB_BASE : FANOUT_CB_EGRESS) == 0 && !mrtt_in_rtt_cb)
			s->flags |= FANOUT_SOCK_EGRESS_CB;
		/* Response data on the fast path runs no callback; the ACK the socket sends for it does (when egress
		 * callbacks are on). Cap the delayed ACK (TCP_BPF_DELACK_MAX, us; the kernel's floor is 2 jiffies) so that
		 * ACK follows the data promptly. */
		{
			int v = 2000;
			if (bpf_setsockopt(ctx, FANOUT_SOL_TCP, FANOUT_TCP_BPF_DELACK_MAX, &v, sizeof(v))) {
				v = 8000;
				bpf_setsockopt(ctx, FANOUT_SOL_TCP, FANOUT_TCP_BPF_DELACK_MAX, &v, sizeof(v));
			}
		}
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		fold(ctx, s, slot_of(s)); /* the handshake's segments; from here on pure_in tells pure ACKs apart */
		break;
	case BPF_SOCK_OPS_STATE_CB:
		on_state(ctx, s);
		break;
	case BPF_SOCK_OPS_RTO_CB:
		on_rto(ctx, s);
		break;
	}
	return 1;
}
