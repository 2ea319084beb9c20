package killswitch

import "time"

// State is a workload's kill-switch state.
type State int

// States, in their usual order.
const (
	Observe State = iota
	Alert
	Trip
	Releasing
	Released
)

// States lists every state (for metrics).
var States = []State{Observe, Alert, Trip, Releasing, Released}

func (s State) String() string {
	switch s {
	case Alert:
		return "alert"
	case Trip:
		return "trip"
	case Releasing:
		return "releasing"
	case Released:
		return "released"
	}
	return "observe"
}

// Action is what a decision does.
type Action string

// Decision actions, as printed by replay and counted in fanout_decisions_total.
const (
	ActionAlert   Action = "alert"
	ActionTrip    Action = "trip"
	ActionRelease Action = "release"
)

// Evidence is the numbers behind a decision.
type Evidence struct {
	Rule               string   `json:"rule"`
	Utilization        float64  `json:"utilization"`
	RequestsPerS       float64  `json:"requests_per_s"`
	BaselineRequests   float64  `json:"baseline_requests_per_s"`
	RxBytesPerS        float64  `json:"rx_bytes_per_s"`
	BaselineRxBytes    float64  `json:"baseline_rx_bytes_per_s"`
	SyncNodes          int      `json:"synchronized_nodes"`
	EstablishedNodes   int      `json:"established_nodes"`
	Pods               uint32   `json:"pods"`
	TargetPods         uint32   `json:"target_pods"`
	PerPodRequests     float64  `json:"per_pod_requests_per_s"`
	PerPodRxBytes      float64  `json:"per_pod_rx_bytes_per_s"`
	ProjectedRatio     float64  `json:"projected_load_ratio"`
	ExcessShare        float64  `json:"excess_share"`
	CollapseETASeconds float64  `json:"collapse_eta_s,omitempty"`
	Contributors       []string `json:"contributors,omitempty"`
	SurgingWorkloads   int      `json:"surging_workloads,omitempty"`
	SustainedSeconds   int64    `json:"sustained_s,omitempty"`
}

// Decision is one kill-switch decision.
type Decision struct {
	Second   int64    `json:"second"`
	Action   Action   `json:"action"`
	Workload string   `json:"workload"`
	Reason   string   `json:"reason"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Epoch    uint64   `json:"epoch,omitempty"`
	DryRun   bool     `json:"dry_run,omitempty"`
	Manual   bool     `json:"manual,omitempty"`
	Evidence Evidence `json:"evidence"`
}

// Directive is an active block or release the agents should enforce.
type Directive struct {
	Block    bool
	Workload string
	Epoch    uint64
	TTL      time.Duration
	Reason   string
	// Release ramp (Block false).
	Issued       int64 // second the ramp started
	RampDuration time.Duration
	RampSteps    uint
	RampJitter   time.Duration
}
