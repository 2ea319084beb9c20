package probe

import (
	"fmt"

	"github.com/fanoutdev/fanout/bpf"
)

// LatencyBuckets is the number of log2 microsecond buckets of Health.Latency (bpf/sockops.bpf.c): bucket i counts
// responses with latency in [2^i, 2^(i+1)) us, bucket 0 also < 1 us, the last one everything above.
const LatencyBuckets = 28

// Health is one cgroup's monotonic view of the API server's answers (per-socket design only).
type Health struct {
	Latency            [LatencyBuckets]uint64
	LatencySumUs       uint64
	FailedConnects     uint64 // connects that never established
	ConnectTimeouts    uint64 // of those: SYN retransmitted or ETIMEDOUT
	Resets             uint64 // established connections reset
	RetransmitTimeouts uint64 // RTOs on established connections
}

// Sub returns h - o field by field (a counter that went backwards, a re-created entry, yields its new value).
func (h Health) Sub(o Health) Health {
	d := func(a, b uint64) uint64 {
		if a < b {
			return a
		}
		return a - b
	}
	var r Health
	for i := range h.Latency {
		r.Latency[i] = d(h.Latency[i], o.Latency[i])
	}
	r.LatencySumUs = d(h.LatencySumUs, o.LatencySumUs)
	r.FailedConnects = d(h.FailedConnects, o.FailedConnects)
	r.ConnectTimeouts = d(h.ConnectTimeouts, o.ConnectTimeouts)
	r.Resets = d(h.Resets, o.Resets)
	r.RetransmitTimeouts = d(h.RetransmitTimeouts, o.RetransmitTimeouts)
	return r
}

// Add returns h + o field by field.
func (h Health) Add(o Health) Health {
	for i := range h.Latency {
		h.Latency[i] += o.Latency[i]
	}
	h.LatencySumUs += o.LatencySumUs
	h.FailedConnects += o.FailedConnects
	h.ConnectTimeouts += o.ConnectTimeouts
	h.Resets += o.Resets
	h.RetransmitTimeouts += o.RetransmitTimeouts
	return h
}

// Responses is the number of latency samples.
func (h Health) Responses() uint64 {
	var n uint64
	for _, v := range h.Latency {
		n += v
	}
	return n
}

// IsZero reports whether nothing was observed.
func (h Health) IsZero() bool { return h == Health{} }

// ReadHealth returns every cgroup's latency histogram and connection outcomes, keyed by cgroup id. Empty in
// ModeSKB (the cgroup_skb design does not observe them).
func (p *Probe) ReadHealth() (map[uint64]Health, error) {
	out := make(map[uint64]Health)
	if p.sock == nil {
		return out, nil
	}
	var id uint64
	var v bpf.SockopsCgroupHealth
	it := p.sock.ApiHealth.Iterate()
	for it.Next(&id, &v) {
		out[id] = Health{Latency: v.Latency, LatencySumUs: v.LatencySumUs, FailedConnects: v.FailedConnects,
			ConnectTimeouts: v.ConnectTimeouts, Resets: v.Resets, RetransmitTimeouts: v.RetransmitTimeouts}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read api_health: %w", err)
	}
	slots, err := p.readSlots()
	if err != nil {
		return nil, err
	}
	for id, v := range slots {
		out[id] = out[id].Add(Health{Latency: v.Latency, LatencySumUs: v.LatencySumUs})
	}
	return out, nil
}
