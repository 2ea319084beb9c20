// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//go:build ignore

/* fanout traffic probe, per-socket design: API-server traffic, response latency and connection outcomes per cgroup,
 * with nothing on the path of other packets.
 *
 * Programs (attached with BPF links at the node's pods cgroup; they see every descendant cgroup):
 *   cgroup/connect4, cgroup/connect6: for connect() to an API endpoint (api_endpoints), count the connect for the
 *       current cgroup (the pod's: connect runs in the caller's context) and give the socket an api_socks entry
 *       holding that cgroup id. Always allow (the kill switch denies in its own program, which runs first).
 *   sockops: runs on TCP connection events of every socket in the subtree (per connection, never per packet). A
 *       socket without an api_socks entry leaves after one socket-storage lookup. For API sockets it enables
 *       per-socket callbacks at TCP_CONNECT_CB (state, RTO, header-option write and parse: these then run for
 *       this socket's packets only) and on them:
 *         HDR_OPT_LEN_CB (each egress skb, before GSO; reserves no option space): tx packets, payload bytes and
 *             payload segments, exactly like the cgroup_skb egress program; the first payload after a response
 *             starts a request (latency clock).
 *         every callback: folds the socket's cumulative rx counters (bytes_received, data_segs_in, segs_in) as
 *             deltas into the cgroup's counters (STATE_CB at close flushes the rest); when bytes arrived since the
 *             outstanding request started, it ends: latency = now - start, into the cgroup's log2 us histogram.
 *         PARSE_HDR_OPT_CB (ingress skbs on the slow path), RTT_CB (an ACK of new data, e.g. a response that acks
 *             its request): end a request on arrival. Ingress data on the fast path runs no callback, so the
 *             socket's delayed-ACK ceiling is lowered (TCP_BPF_DELACK_MAX, 2 ms): its ACK then runs
 *             HDR_OPT_LEN_CB within 2 ms of the data.
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
 *   api_endpoints, api_filter: bpf/endpoints.h.
 *
 * Minimum kernel: 5.10 (header-option callbacks 5.10, sk_storage in sock_addr programs 5.10, bpf_skc_to_tcp_sock
 * 5.9 with kernel BTF for sk_err via CO-RE). User space falls back to traffic.bpf.c when this object does not load. */
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

/* Only the field we read, relocated against the running kernel's struct sock (CO-RE). */
struct sock___fanout {
	int sk_err;
} __attribute__((preserve_access_index));

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
		struct api_sock fresh = {.cgroup_id = id};
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

static __always_inline void end_request(struct api_sock *s)
{
	struct cgroup_health *h;
	__u64 start = s->req_start_ns, us;
	__u32 idx;

	s->req_start_ns = 0;
	us = (bpf_ktime_get_ns() - start) / 1000;
	h = health_for(s->cgroup_id);
	if (!h)
		return;
	idx = log2_bucket(us);
	if (idx < FANOUT_LATENCY_BUCKETS)
		__sync_fetch_and_add(&h->latency[idx], 1);
	__sync_fetch_and_add(&h->latency_sum_us, us);
}

/* fold_rx adds what the socket received since the last callback (the kernel's cumulative bytes_received,
 * data_segs_in, segs_in) to the cgroup's counters: exact whichever callbacks ran (ingress packets on the fast path
 * run none), and ends the outstanding request when response bytes arrived since it started. */
static __always_inline void fold_rx(struct bpf_sock_ops *ctx, struct api_sock *s, struct cgroup_traffic *c)
{
	__u64 rx = ctx->bytes_received;
	__u32 segs = ctx->data_segs_in, pkts = ctx->segs_in;

	if (rx == s->rx_bytes && pkts == s->rx_packets)
		return;
	if (!c)
		c = counters_for(s->cgroup_id);
	if (c) {
		c->rx_bytes += rx - s->rx_bytes;
		c->rx_segments += (__u32)(segs - s->rx_segments);
		c->rx_packets += (__u32)(pkts - s->rx_packets);
	}
	s->rx_bytes = rx;
	s->rx_segments = segs;
	s->rx_packets = pkts;
	if (s->req_start_ns && rx > s->req_rx_mark)
		end_request(s);
}

static __always_inline void on_egress(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	struct cgroup_traffic *c;
	__u32 len;

	if (ctx->args[0] == BPF_WRITE_HDR_TCP_CURRENT_MSS || !ctx->skb_tcp_flags)
		return; /* tcp_current_mss() asking for option space: no packet */
	len = ctx->skb_len; /* before the TCP header is pushed: payload only */
	c = counters_for(s->cgroup_id);
	if (c) {
		c->tx_packets++;
		c->tx_bytes += len;
		c->tx_segments += len > 0;
	}
	fold_rx(ctx, s, c);
	if (len && !s->req_start_ns) {
		s->req_start_ns = bpf_ktime_get_ns();
		s->req_rx_mark = s->rx_bytes;
	}
}

/* on_ingress runs for ingress packets that take the slow path (and for RTT samples): a packet with payload ends
 * the outstanding request at once (bytes_received counts it only later, in tcp_data_queue). */
static __always_inline void on_ingress(struct bpf_sock_ops *ctx, struct api_sock *s, int parse)
{
	__u32 len = ctx->skb_len, hdr;

	fold_rx(ctx, s, 0);
	if (!parse || !s->req_start_ns)
		return;
	hdr = (__u32)((long)ctx->skb_data_end - (long)ctx->skb_data); /* skb->data is the TCP header */
	if (len > hdr)
		end_request(s);
}

static __always_inline void on_close(struct bpf_sock_ops *ctx, struct api_sock *s)
{
	fold_rx(ctx, s, 0);
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
	__u32 from = ctx->args[0], to = ctx->args[1];
	int err;

	if (to != FANOUT_TCP_CLOSE)
		return;
	on_close(ctx, s);
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
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_egress(ctx, s);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		on_ingress(ctx, s, 1);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		on_ingress(ctx, s, 0);
		break;
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG |
						       BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG |
						       BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG);
		/* Response data on the fast path runs no callback; the ACK the socket sends for it does. Cap the delayed
		 * ACK (TCP_BPF_DELACK_MAX, us; the kernel's floor is 2 jiffies) so that ACK follows the data promptly. */
		{
			int v = 2000;
			if (bpf_setsockopt(ctx, FANOUT_SOL_TCP, FANOUT_TCP_BPF_DELACK_MAX, &v, sizeof(v))) {
				v = 8000;
				bpf_setsockopt(ctx, FANOUT_SOL_TCP, FANOUT_TCP_BPF_DELACK_MAX, &v, sizeof(v));
			}
		}
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
