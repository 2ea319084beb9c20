package agent

import (
	"time"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/collector/probe"
)

// Counts are API-server traffic counters (deltas in a Snapshot, totals in metrics).
type Counts struct {
	Connects uint64
	Requests uint64 // egress payload segments: the request-rate proxy
	TxBytes  uint64
	RxBytes  uint64
	Packets  uint64 // both directions
}

func (c *Counts) add(o Counts) {
	c.Connects += o.Connects
	c.Requests += o.Requests
	c.TxBytes += o.TxBytes
	c.RxBytes += o.RxBytes
	c.Packets += o.Packets
}

// IsZero reports whether all counts are 0.
func (c Counts) IsZero() bool { return c == Counts{} }

// PodDelta is one pod's traffic during a tick.
type PodDelta struct {
	UID       string
	Namespace string
	Pod       string
	Workload  string // Kind/namespace/name
	Counts
}

// WorkloadDelta is one workload's traffic on this node during a tick (pods summed; host processes appear as
// SystemdUnit//<unit>, unresolved cgroups as Unknown//cgroup-<id>).
type WorkloadDelta struct {
	Workload string
	Pods     int // pods of the workload with traffic in the tick
	Counts
	// Per-socket probe only (zero with the cgroup_skb fallback).
	Latency  Latency
	Outcomes Outcomes
}

// Snapshot is one tick's report: per-pod and per-workload deltas with nonzero traffic.
type Snapshot struct {
	Node      string
	Seq       uint64 // 1, 2, ... per agent process
	Time      time.Time
	Interval  time.Duration // time since the previous read
	Pods      []PodDelta
	Workloads []WorkloadDelta
}

// Latency is the kernel-observed response latency of API calls: log2 microsecond buckets (bucket i counts
// [2^i, 2^(i+1)) us, bucket 0 also < 1 us, the last everything above), as on the wire (api.LatencyHistogram).
type Latency struct {
	Buckets [probe.LatencyBuckets]uint64
	Count   uint64
	SumUs   uint64
}

// Outcomes count what went wrong on API connections (api.ConnOutcomes).
type Outcomes struct {
	FailedConnects     uint64
	ConnectTimeouts    uint64
	Resets             uint64
	RetransmitTimeouts uint64
}

// IsZero reports whether nothing went wrong.
func (o Outcomes) IsZero() bool { return o == Outcomes{} }

func (l *Latency) add(h probe.Health) {
	for i, v := range h.Latency {
		l.Buckets[i] += v
		l.Count += v
	}
	l.SumUs += h.LatencySumUs
}

func (o *Outcomes) add(h probe.Health) {
	o.FailedConnects += h.FailedConnects
	o.ConnectTimeouts += h.ConnectTimeouts
	o.Resets += h.Resets
	o.RetransmitTimeouts += h.RetransmitTimeouts
}

// Proto returns the wire form (nil when no response was observed).
func (l Latency) Proto() *api.LatencyHistogram {
	if l.Count == 0 {
		return nil
	}
	last := 0
	for i, v := range l.Buckets {
		if v != 0 {
			last = i
		}
	}
	return &api.LatencyHistogram{Buckets: append([]uint64(nil), l.Buckets[:last+1]...), Count: l.Count, SumUs: l.SumUs}
}

// Proto returns the wire form (nil when nothing went wrong).
func (o Outcomes) Proto() *api.ConnOutcomes {
	if o.IsZero() {
		return nil
	}
	return &api.ConnOutcomes{FailedConnects: o.FailedConnects, ConnectTimeouts: o.ConnectTimeouts, Resets: o.Resets,
		RetransmitTimeouts: o.RetransmitTimeouts}
}
