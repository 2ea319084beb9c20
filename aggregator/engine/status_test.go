package engine

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// statusReference is Status as it was before its ordering was reworked: every finding, then the tripped workloads
// without one, stable-sorted by requests (highest first), then name.
func statusReference(e *Engine) []WorkloadStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []WorkloadStatus
	seen := map[string]bool{}
	for i := range e.res.Findings {
		f := &e.res.Findings[i]
		state, reason, epoch := e.sw.StateOf(f.Workload)
		seen[f.Workload] = true
		out = append(out, WorkloadStatus{
			Workload: f.Workload, State: state, Reason: reason, Epoch: epoch, Protected: e.sw.Protected(f.Workload),
			Now: f.View.Now, BaselineRequests: f.View.BaseRequests, Pods: f.View.Pods, Nodes: f.View.Nodes,
			SyncNodes: f.View.SyncNodes, ProjectedRatio: f.Projected, CostRatio: f.Share, Held: e.sw.HeldReason(f.Workload),
		})
	}
	for _, w := range e.sw.Tripped() {
		if !seen[w] {
			state, reason, epoch := e.sw.StateOf(w)
			out = append(out, WorkloadStatus{Workload: w, State: state, Reason: reason, Epoch: epoch, Held: e.sw.HeldReason(w)})
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Now.Requests != out[b].Now.Requests {
			return out[a].Now.Requests > out[b].Now.Requests
		}
		return out[a].Workload < out[b].Workload
	})
	return out
}

// Status lists the same workloads in the same order as before (ties on requests by name, tripped workloads without a
// finding included, protection matched); Summary holds the same workloads with the same loads and states.
func TestStatusOrderAndSummary(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 1e6
	e := New(cfg, nil)
	e.Start(10)
	for n := range 4 {
		r := &Report{Node: fmt.Sprintf("node-%d", n), Second: 10, Sequence: 1}
		for i := range 500 {
			name := "w"
			if i%50 == 0 {
				name = "cilium-" // protected by default
			}
			r.Workloads = append(r.Workloads, WorkloadReport{Workload: fmt.Sprintf("Deployment/ns-%d/%s%d", i%7, name, (i*31+n)%600), Pods: 1,
				Counters: fleet.Counters{Requests: float64(i % 5), RxBytes: float64(i), Connects: float64(n)}})
		}
		if err := e.Ingest(r); err != nil {
			t.Fatal(err)
		}
	}
	e.CloseThrough(10)
	for _, w := range []string{"Deployment/ns-1/w31", "Deployment/gone/tripped", "Deployment/a/tripped"} {
		if _, err := e.Manual(11, true, w, "test", 0); err != nil {
			t.Fatal(err)
		}
	}
	st := e.Status()
	want := statusReference(e)
	if len(st.Workloads) != len(want) || len(want) < 500 {
		t.Fatalf("%d workloads, reference %d", len(st.Workloads), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(st.Workloads[i], want[i]) {
			t.Fatalf("workload %d: %+v, reference %+v", i, st.Workloads[i], want[i])
		}
	}
	protected, tripped := 0, 0
	byName := map[string]WorkloadStatus{}
	for _, w := range want {
		byName[w.Workload] = w
		if w.Protected {
			protected++
		}
		if w.State == killswitch.Trip {
			tripped++
		}
	}
	if protected == 0 || tripped != 3 {
		t.Fatalf("%d protected and %d tripped workloads: the test does not cover them", protected, tripped)
	}

	sum := e.Summary()
	if len(sum.Workloads) != len(want) || sum.NodesReporting != st.NodesReporting || sum.Pairs != st.Pairs || sum.Utilization != st.Utilization {
		t.Fatalf("summary %d workloads, %d nodes, %d pairs, utilization %v; status %d, %d, %d, %v", len(sum.Workloads), sum.NodesReporting,
			sum.Pairs, sum.Utilization, len(want), st.NodesReporting, st.Pairs, st.Utilization)
	}
	for _, w := range sum.Workloads {
		s, ok := byName[w.Workload]
		if !ok || w.State != s.State || w.Now != s.Now || w.SyncNodes != s.SyncNodes || w.ProjectedRatio != s.ProjectedRatio || w.Held != s.Held {
			t.Fatalf("summary %+v, status %+v", w, s)
		}
		delete(byName, w.Workload)
	}
	if got := sum.Decisions; len(got) != 3 || got[0] != (DecisionCount{Action: killswitch.ActionTrip, Workload: "Deployment/a/tripped", Count: 1}) {
		t.Fatalf("decisions %+v, want the three manual trips, the last first", got)
	}
}
