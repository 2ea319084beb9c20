package scenario

import (
	"fmt"
	"strings"
	"time"
)

// Scenario is a decoded, validated scenario file.
type Scenario struct {
	Version   int
	Name      string
	Seed      uint64
	Duration  time.Duration
	Nodes     int
	APIServer APIServer
	Workloads []Workload
}

// APIServer is the simulated world's API server: its capacity and the parameters of what it shows (flow-control
// seats, queueing, latency) and of when its metrics are unavailable. Replay never tells the detector the capacity
// unless asked to (--capacity-from-scenario).
type APIServer struct {
	CapacityRequestsPerS float64
	CapacityRxBytesPerS  float64
	// Seats is the nominal limit of concurrently executing seats summed over the non-exempt priority levels.
	Seats int
	// BackgroundUtilization is load from clients fanout does not see (kubelets, control-plane controllers).
	BackgroundUtilization float64
	// MetricsInterval is how often the aggregator scrapes the API server's metrics.
	MetricsInterval time.Duration
	// MetricsUnavailable lists periods in which the API server's metrics cannot be read.
	MetricsUnavailable []Outage
}

// Defaults of the world model.
const (
	DefaultSeats           = 600
	DefaultMetricsInterval = 5 * time.Second
)

// Known reports whether the scenario describes an API server at all.
func (a *APIServer) Known() bool { return a.CapacityRequestsPerS > 0 || a.CapacityRxBytesPerS > 0 }

// MetricsAvailable reports whether the API server's metrics can be read at t.
func (a *APIServer) MetricsAvailable(t time.Duration) bool {
	for _, o := range a.MetricsUnavailable {
		if t >= o.At && (o.For == 0 || t < o.At+o.For) {
			return false
		}
	}
	return true
}

// Outage is a period without the API server's metrics.
type Outage struct {
	At  time.Duration
	For time.Duration // 0 = until the end
}

// Scale says what a workload's response size grows with.
type Scale string

// Scale values.
const (
	ScaleNone  Scale = "none"
	ScaleNodes Scale = "nodes"
	ScalePods  Scale = "pods"
)

// PlacementKind says how a workload's pods are spread over the nodes.
type PlacementKind int

// Placement kinds.
const (
	PlacementAll PlacementKind = iota
	PlacementCount
	PlacementFraction
)

// Placement is a workload's placement: all nodes, a pod count, or a fraction of the nodes.
type Placement struct {
	Kind     PlacementKind
	Count    int
	Fraction float64
}

// Pods returns how many pods the placement asks for in a fleet of the given size.
// Counts above the node count place several pods per node.
func (p Placement) Pods(nodes int) int {
	switch p.Kind {
	case PlacementCount:
		return p.Count
	case PlacementFraction:
		n := int(p.Fraction*float64(nodes) + 0.5)
		if n < 1 && p.Fraction > 0 {
			n = 1
		}
		return n
	default:
		return nodes
	}
}

// PerPod is the mean traffic of one pod.
type PerPod struct {
	RequestsPerS      float64
	RxBytesPerRequest float64
	RxBytesScale      Scale
}

// Phase changes a workload's per-pod request rate for a while.
type Phase struct {
	At           time.Duration
	RequestsPerS float64
	// For is how long the phase lasts; 0 means until the end of the scenario.
	For time.Duration
}

// Workload is one workload entry of the scenario. Several entries may carry the same name: they are separate pod
// groups of one workload (for example the old and the new ReplicaSet of a Deployment during a rolling update).
type Workload struct {
	Name      string // Kind/namespace/name
	Protected bool
	Placement Placement
	Start     time.Duration
	Rollout   time.Duration
	PerPod    PerPod
	Phases    []Phase
}

// Kind returns the workload's kind (the part before the first slash).
func (w Workload) Kind() string {
	k, _, _ := strings.Cut(w.Name, "/")
	return k
}

// RequestsPerSAt returns the per-pod mean request rate at time t; later phases win where phases overlap.
func (w Workload) RequestsPerSAt(t time.Duration) float64 {
	rps := w.PerPod.RequestsPerS
	for _, p := range w.Phases {
		if t >= p.At && (p.For == 0 || t < p.At+p.For) {
			rps = p.RequestsPerS
		}
	}
	return rps
}

// Error is a decoding error naming the line and the field.
type Error struct {
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Field, e.Msg)
}
