package engine

import (
	"cmp"
	"slices"
	"strings"

	"github.com/fanoutdev/fanout/aggregator/detect"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// WorkloadStatus is one workload in Status.
type WorkloadStatus struct {
	Workload         string
	State            killswitch.State
	Reason           string
	Epoch            uint64
	Protected        bool
	Now              fleet.Counters
	BaselineRequests float64
	Pods, Nodes      uint32
	SyncNodes        int
	ProjectedRatio   float64
	CostRatio        float64
	// Held says why a trip past its minimum hold is not released (its return would not fit the headroom).
	Held string
}

// Status is the engine's state after the last closed second.
type Status struct {
	Second         int64
	NodesReporting int
	Utilization    float64
	DryRun         bool
	Workloads      []WorkloadStatus // by fleet request rate, highest first (ties: by name)
	Pairs          int
	// Headroom is the estimate the last closed second was judged with.
	Headroom headroom.Estimate
}

// Status returns a copy of the current state: every workload held, and the tripped ones the last second had no
// finding for, ordered. O(n log n) in the workloads held, with their protection patterns matched; a metrics scrape
// reads Summary instead.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Second: e.res.Second, NodesReporting: e.res.NodesReporting, Utilization: e.res.Utilization,
		DryRun: e.sw.Config().DryRun, Pairs: e.fleet.Pairs(), Headroom: e.est}
	extra := e.trippedWithoutFinding()
	// Order keys first (a sort of small keys, not of the statuses), then one status per key in order.
	type key struct {
		requests float64
		name     string
		finding  int // index in e.res.Findings, -1 for extra
	}
	keys := make([]key, 0, len(e.res.Findings)+len(extra))
	for i := range e.res.Findings {
		f := &e.res.Findings[i]
		keys = append(keys, key{f.View.Now.Requests, f.Workload, i})
	}
	for _, w := range extra {
		keys = append(keys, key{0, w, -1})
	}
	// Names are unique (findings are one per workload held, extra are not among them): a total order.
	slices.SortFunc(keys, func(a, b key) int {
		if c := cmp.Compare(b.requests, a.requests); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	st.Workloads = make([]WorkloadStatus, len(keys))
	for i, k := range keys {
		state, reason, epoch := e.sw.StateOf(k.name)
		ws := WorkloadStatus{Workload: k.name, State: state, Reason: reason, Epoch: epoch, Held: e.sw.HeldReason(k.name)}
		if k.finding >= 0 {
			f := &e.res.Findings[k.finding]
			ws.Protected = e.sw.Protected(f.Workload)
			ws.Now, ws.BaselineRequests, ws.Pods, ws.Nodes = f.View.Now, f.View.BaseRequests, f.View.Pods, f.View.Nodes
			ws.SyncNodes, ws.ProjectedRatio, ws.CostRatio = f.View.SyncNodes, f.Projected, f.Share
		}
		st.Workloads[i] = ws
	}
	return st
}

// trippedWithoutFinding returns the tripped (or releasing) workloads the last closed second had no finding for (they
// left the fleet's windows while blocked), sorted. Under e.mu.
func (e *Engine) trippedWithoutFinding() []string {
	tripped := e.sw.Tripped()
	if len(tripped) == 0 {
		return nil
	}
	left := make(map[string]bool, len(tripped))
	for _, w := range tripped {
		left[w] = true
	}
	for i := range e.res.Findings {
		delete(left, e.res.Findings[i].Workload)
	}
	out := tripped[:0]
	for _, w := range tripped {
		if left[w] {
			out = append(out, w)
		}
	}
	return out
}

// WorkloadSummary is one workload's load and kill-switch state: what the metrics export of it.
type WorkloadSummary struct {
	Workload       string
	State          killswitch.State
	Now            fleet.Counters
	SyncNodes      int
	ProjectedRatio float64
	// Held says why a trip past its minimum hold is not released ("" when it is not held).
	Held string
}

// Summary is what a metrics scrape reads of the engine after the last closed second.
type Summary struct {
	NodesReporting int
	Utilization    float64
	Pairs          int
	// Workloads are the same workloads as Status's, in no particular order.
	Workloads []WorkloadSummary
	// Decisions are the decision counts since the start (see MaxDecisionWorkloads): by workload, then with Workload ""
	// the decisions on workloads whose names are no longer kept.
	Decisions []DecisionCount
}

// Summary returns the workloads' loads and states and the decision counts: Status without its order, protection and
// reasons, O(n) in the workloads held (one kill-switch lookup each).
func (e *Engine) Summary() Summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	extra := e.trippedWithoutFinding()
	s := Summary{NodesReporting: e.res.NodesReporting, Utilization: e.res.Utilization, Pairs: e.fleet.Pairs(),
		Workloads: make([]WorkloadSummary, len(e.res.Findings), len(e.res.Findings)+len(extra)), Decisions: e.decisions.counts()}
	for i := range e.res.Findings {
		f := &e.res.Findings[i]
		s.Workloads[i] = e.summary(f.Workload, f)
	}
	for _, w := range extra {
		s.Workloads = append(s.Workloads, e.summary(w, nil))
	}
	return s
}

// summary is one workload's summary; f is nil for a tripped workload without a finding. Under e.mu.
func (e *Engine) summary(w string, f *detect.Finding) WorkloadSummary {
	state, _, _ := e.sw.StateOf(w)
	ws := WorkloadSummary{Workload: w, State: state}
	if state == killswitch.Trip {
		ws.Held = e.sw.HeldReason(w)
	}
	if f != nil {
		ws.Now, ws.SyncNodes, ws.ProjectedRatio = f.View.Now, f.View.SyncNodes, f.Projected
	}
	return ws
}
