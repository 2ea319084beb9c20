package agent

import "time"

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
