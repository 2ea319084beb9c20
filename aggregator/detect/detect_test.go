package detect

import (
	"math"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/headroom"
)

func snap(sec int64, nodes int, views ...fleet.View) *fleet.Snapshot {
	s := &fleet.Snapshot{Second: sec, NodesReporting: nodes, Workloads: views}
	for _, v := range views {
		s.Total.Requests += v.Now.Requests
		s.Total.RxBytes += v.Now.RxBytes
		s.FleetPods += v.Pods
	}
	return s
}

// A DaemonSet on 50 of 1000 nodes, 2 MB/s per pod: at full placement 2 GB/s against 1 GB/s capacity.
func TestProjectionToFullPlacement(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS = 5000, 1e9
	d := New(cfg)
	var res Result
	for sec := int64(100); sec <= 160; sec++ {
		pods := uint32(sec - 110)
		if sec < 111 {
			pods = 1
		}
		ds := fleet.View{ID: 0, Name: "DaemonSet/sec/scanner", Kind: "DaemonSet", Pods: pods, MaxPods: pods, Nodes: pods,
			Now: fleet.Counters{Requests: float64(pods), RxBytes: 2e6 * float64(pods)}, CostRequests: 1, CostRxBytes: 2e6,
			ObservedRequests: 1000, LastGrowth: sec}
		web := fleet.View{ID: 1, Name: "Deployment/shop/web", Kind: "Deployment", Pods: 800, MaxPods: 800, Nodes: 600,
			Now: fleet.Counters{Requests: 400, RxBytes: 3e8}, BaseRequests: 400, BaseRxBytes: 3e8, LastGrowth: 0}
		d.Evaluate(snap(sec, 1000, ds, web), &res)
	}
	f := res.Findings[0]
	want := (3e8 + 2e6*1000) / 1e9
	if !f.RollingOut || f.TargetPods != 1000 || math.Abs(f.Projected-want) > 0.01 || !f.ProjectedOver {
		t.Fatalf("projection: rolling %v target %d projected %.3f (want %.3f) over %v", f.RollingOut, f.TargetPods, f.Projected, want, f.ProjectedOver)
	}
	if f.CollapseETA <= 0 {
		t.Fatalf("no collapse ETA: %v", f.CollapseETA)
	}
	if res.Findings[1].ProjectedOver || res.Findings[1].RollingOut {
		t.Fatalf("a stable Deployment is not rolling out: %+v", res.Findings[1])
	}
}

func TestFleetWideAndOverloadAttribution(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS = 1000, 1e12
	d := New(cfg)
	var res Result
	var vs []fleet.View
	for i, n := range []string{"DaemonSet/a/a", "DaemonSet/b/b", "DaemonSet/c/c", "DaemonSet/d/d"} {
		vs = append(vs, fleet.View{ID: fleet.WorkloadID(i), Name: n, Kind: "DaemonSet", Pods: 100, MaxPods: 100, Nodes: 100,
			Now: fleet.Counters{Requests: 400}, BaseRequests: 40, SyncNodes: 90, EstablishedNodes: 100})
	}
	d.Evaluate(snap(10, 100, vs...), &res)
	if !res.FleetWide || res.SurgingCount != 4 {
		t.Fatalf("fleet-wide %v surging %d", res.FleetWide, res.SurgingCount)
	}
	if !res.Overloaded || len(res.Contributors) != 4 || res.Contributors[0] != "DaemonSet/a/a" {
		t.Fatalf("attribution: %v %v", res.Overloaded, res.Contributors)
	}
	// One workload alone surging is not fleet-wide.
	for i := 1; i < 4; i++ {
		vs[i].SyncNodes, vs[i].Now.Requests = 0, 40
	}
	d.Evaluate(snap(11, 100, vs...), &res)
	if res.FleetWide || !res.Findings[0].Surge || !res.Findings[0].Threat {
		t.Fatalf("single surge: fleet-wide %v surge %v threat %v", res.FleetWide, res.Findings[0].Surge, res.Findings[0].Threat)
	}
}

type fixedPlacement map[string]uint32

func (p fixedPlacement) FullPlacement(w string) (uint32, bool) { n, ok := p[w]; return n, ok }

// With the API server's placement, a DaemonSet's full placement is its desired pods, not the nodes reporting.
func TestProjectionUsesPlacement(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS = 5000, 1e9
	d := New(cfg)
	d.SetPlacement(fixedPlacement{"DaemonSet/sec/scanner": 4000})
	var res Result
	ds := fleet.View{ID: 0, Name: "DaemonSet/sec/scanner", Kind: "DaemonSet", Pods: 50, MaxPods: 50, Nodes: 50,
		Now: fleet.Counters{Requests: 50, RxBytes: 1e8}, CostRequests: 1, CostRxBytes: 2e6, ObservedRequests: 1000, LastGrowth: 100}
	other := fleet.View{ID: 1, Name: "Deployment/a/b", Kind: "Deployment", Pods: 2, MaxPods: 2, Nodes: 2}
	d.Evaluate(snap(100, 1000, ds, other), &res)
	if res.Findings[0].TargetPods != 4000 {
		t.Fatalf("target %d, want the API server's 4000", res.Findings[0].TargetPods)
	}
	if res.Findings[1].TargetPods != 2 {
		t.Fatalf("unknown workload: target %d, want the reports' 2", res.Findings[1].TargetPods)
	}
	d.SetPlacement(nil)
	d.Evaluate(snap(101, 1000, ds, other), &res)
	if res.Findings[0].TargetPods != 1000 {
		t.Fatalf("without placement: target %d, want the 1000 nodes", res.Findings[0].TargetPods)
	}
}

// A learned capacity resting on one sample does not overrule what the API server shows now: a model that says 6x
// over capacity while the API server's latency says 20% busy is not an overload.
func TestLowConfidenceModelDoesNotOverruleMeasured(t *testing.T) {
	d := New(DefaultConfig())
	var res Result
	web := fleet.View{ID: 0, Name: "Deployment/shop/web", Kind: "Deployment", Pods: 10, MaxPods: 10, Nodes: 10,
		Now: fleet.Counters{Requests: 360}, BaseRequests: 60}
	for _, c := range []struct {
		confidence float64
		overloaded bool
	}{{0.02, false}, {0.8, true}} {
		d.SetEstimate(headroom.Estimate{Source: headroom.SourceLearned, CapacityRequestsPerS: 58, Confidence: c.confidence,
			Utilization: 0.2, UtilizationSource: headroom.FromLatency, APIServerFresh: true})
		d.Evaluate(snap(10, 10, web), &res)
		if res.Overloaded != c.overloaded {
			t.Fatalf("confidence %.2f: overloaded %v (utilization %.2f, model %.2f)", c.confidence, res.Overloaded, res.Utilization, res.ModelUtilization)
		}
	}
}

// A workload that arrived while fanout watched and has no baseline yet (a rollout into an overload, where baselines
// pause) carries all of its load as excess, so it is the overload's contributor; one already running when the
// aggregator started is measured against what it has learned.
func TestArrivedWorkloadWithoutBaselineIsAllExcess(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS = 1000, 1e12
	d := New(cfg)
	var res Result
	steady := fleet.View{ID: 0, Name: "Deployment/shop/web", Kind: "Deployment", Pods: 10, MaxPods: 10, Nodes: 5,
		Now: fleet.Counters{Requests: 600}, BaseRequests: 600, BaseKnown: true}
	rollout := fleet.View{ID: 1, Name: "DaemonSet/monitoring/telemetry", Kind: "DaemonSet", Pods: 5, MaxPods: 5, Nodes: 5,
		Now: fleet.Counters{Requests: 500}, BaseRequests: 480, Arrived: true}
	d.Evaluate(snap(10, 5, steady, rollout), &res)
	if !res.Overloaded || len(res.Contributors) != 1 || res.Contributors[0] != rollout.Name {
		t.Fatalf("overloaded %v contributors %v, want the arrived workload alone", res.Overloaded, res.Contributors)
	}
	if f := res.Findings[1]; math.Abs(f.ExcessShare-0.5) > 1e-9 {
		t.Fatalf("arrived workload's excess share %.3f, want 0.5 (all of its load)", f.ExcessShare)
	}
	// Present before the aggregator started: its partly learned baseline counts.
	rollout.Arrived = false
	d.Evaluate(snap(11, 5, steady, rollout), &res)
	if len(res.Contributors) != 0 {
		t.Fatalf("contributors %v for workloads at their baselines", res.Contributors)
	}
}

// Baselines pause on an overload the API server reports, not on one only a learned model claims while the API server
// says it is calm; with the capacity told (no measured signal) the model's overload pauses them.
func TestPauseBaselinesOnMeasuredOverload(t *testing.T) {
	v := fleet.View{ID: 0, Name: "Deployment/shop/web", Kind: "Deployment", Pods: 10, MaxPods: 10, Nodes: 5,
		Now: fleet.Counters{Requests: 2000}, BaseRequests: 2000, BaseKnown: true}
	for _, tc := range []struct {
		name     string
		est      headroom.Estimate
		overload bool
		pause    bool
	}{
		{"learned, API server saturated", headroom.Estimate{Source: headroom.SourceLearned, CapacityRequestsPerS: 1000,
			CapacityRxBytesPerS: 1e12, Confidence: 1, Utilization: 1, UtilizationSource: headroom.FromLatency, APIServerFresh: true}, true, true},
		{"learned, API server calm", headroom.Estimate{Source: headroom.SourceLearned, CapacityRequestsPerS: 1000,
			CapacityRxBytesPerS: 1e12, Confidence: 1, Utilization: 0.05, UtilizationSource: headroom.FromLatency, APIServerFresh: true}, true, false},
	} {
		d := New(DefaultConfig())
		d.SetEstimate(tc.est)
		var res Result
		d.Evaluate(snap(10, 5, v), &res)
		if res.Overloaded != tc.overload || res.PauseBaselines != tc.pause {
			t.Errorf("%s: overloaded %v pause %v, want %v %v", tc.name, res.Overloaded, res.PauseBaselines, tc.overload, tc.pause)
		}
	}
	cfg := DefaultConfig()
	cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS = 1000, 1e12
	var res Result
	New(cfg).Evaluate(snap(10, 5, v), &res)
	if !res.Overloaded || !res.PauseBaselines {
		t.Errorf("told capacity: overloaded %v pause %v, want both", res.Overloaded, res.PauseBaselines)
	}
}

// Workloads that arrived while fanout watched stop learning baselines as soon as the API server's own reading is
// busy, before any capacity is known or any overload rule holds.
func TestPauseArrivedBaselinesWhileTheAPIServerReadsBusy(t *testing.T) {
	v := fleet.View{ID: 0, Name: "DaemonSet/monitoring/telemetry", Kind: "DaemonSet", Pods: 3, MaxPods: 3, Nodes: 3,
		Now: fleet.Counters{Requests: 300}, Arrived: true}
	for _, tc := range []struct {
		name  string
		est   headroom.Estimate
		pause bool
	}{
		{"no capacity, latency busy", headroom.Estimate{Source: headroom.SourceNone, UtilizationSeats: 0.01, UtilizationLatency: 0.8, UtilizationNodes: -1}, true},
		{"no capacity, saturated", headroom.Estimate{Source: headroom.SourceNone, UtilizationSeats: 0.01, UtilizationLatency: 0.5, UtilizationNodes: -1, Saturated: true}, true},
		{"no metrics, nodes busy", headroom.Estimate{Source: headroom.SourceNone, UtilizationSeats: -1, UtilizationLatency: -1, UtilizationNodes: 0.9}, true},
		{"calm", headroom.Estimate{Source: headroom.SourceNone, UtilizationSeats: 0.01, UtilizationLatency: 0.2, UtilizationNodes: 0.3}, false},
		{"nothing read yet", headroom.Estimate{}, false},
	} {
		d := New(DefaultConfig())
		d.SetEstimate(tc.est)
		var res Result
		d.Evaluate(snap(3, 3, v), &res)
		if res.PauseArrivedBaselines != tc.pause || res.Overloaded {
			t.Errorf("%s: pause arrived %v overloaded %v, want %v and no overload (no capacity)", tc.name, res.PauseArrivedBaselines, res.Overloaded, tc.pause)
		}
	}
}

// A DaemonSet a pod short of full placement (still rolling out) while another workload overloads the API server is
// no projected overload: its own growth adds under 1% of capacity, though the model's projection of
// everything together reads above the saturated API server's measured utilization.
func TestProjectionNeedsTheWorkloadsOwnGrowth(t *testing.T) {
	d := New(DefaultConfig())
	d.SetEstimate(headroom.Estimate{Source: headroom.SourceLearned, CapacityRequestsPerS: 180, CapacityRxBytesPerS: 6e5,
		Confidence: 0.03, Samples: 1, Utilization: 1, UtilizationSource: headroom.FromLatency, APIServerFresh: true, Saturated: true})
	npd := fleet.View{ID: 0, Name: "DaemonSet/kube-system/node-problem-detector", Kind: "DaemonSet", Pods: 3, MaxPods: 3, Nodes: 3,
		Now: fleet.Counters{Requests: 4.8, RxBytes: 1700}, BaseRequests: 4.8, BaseRxBytes: 1700, BaseKnown: true,
		CostRequests: 1.6, CostRxBytes: 570, ObservedRequests: 500, FirstSecond: 10, LastGrowth: 90}
	tel := fleet.View{ID: 1, Name: "DaemonSet/monitoring/telemetry-agent", Kind: "DaemonSet", Pods: 4, MaxPods: 4, Nodes: 4,
		Now: fleet.Counters{Requests: 230, RxBytes: 7e5}, CostRequests: 57.5, CostRxBytes: 1.75e5, ObservedRequests: 2000,
		FirstSecond: 95, LastGrowth: 97, Arrived: true}
	var res Result
	d.Evaluate(snap(100, 4, npd, tel), &res)
	f := res.Findings[0]
	if !f.RollingOut {
		t.Fatalf("the DaemonSet a pod short of placement is not taken as rolling out: %+v", f)
	}
	if f.ProjectedOver || f.ProjectedWarn {
		t.Fatalf("a pod's growth (1.6 req/s of 180) projected as an overload: projected %.2f, utilization %.2f, over %v warn %v",
			f.Projected, res.Utilization, f.ProjectedOver, f.ProjectedWarn)
	}
	// The same DaemonSet with 3 of 40 pods placed does carry the API server over.
	d.SetPlacement(fixedPlacement{npd.Name: 40})
	d.Evaluate(snap(101, 4, npd, tel), &res)
	if f := res.Findings[0]; !f.ProjectedOver || !f.ProjectedWarn {
		t.Fatalf("37 pods still to come at 1.6 req/s each (a third of capacity): projected %.2f, over %v warn %v", f.Projected, f.ProjectedOver, f.ProjectedWarn)
	}
}

// A steady DaemonSet with pods missing from the fleet's view for one second (16 pods, then 6) is not rolling out:
// projecting its full placement from there would read its own pods as a rollout.
func TestPodsBelowTheirPeakAreNoRollout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS = 100, 1e9
	d := New(cfg)
	var res Result
	view := func(pods uint32) fleet.View {
		return fleet.View{ID: 0, Name: "DaemonSet/kube-system/kube-proxy", Kind: "DaemonSet", Pods: pods, MaxPods: 16, Nodes: pods,
			Now: fleet.Counters{Requests: 5 * float64(pods)}, BaseRequests: 5 * float64(pods), BaseKnown: true,
			CostRequests: 5, ObservedRequests: 5000, FirstSecond: 1, LastGrowth: 50}
	}
	for sec := int64(60); sec < 90; sec++ {
		d.Evaluate(snap(sec, 16, view(16)), &res)
	}
	d.Evaluate(snap(90, 16, view(6)), &res)
	if f := res.Findings[0]; f.RollingOut || f.ProjectedOver || f.ProjectedWarn {
		t.Fatalf("6 of its 16 pods in one second read as a rollout: rolling %v, projected %.2f, over %v, warn %v", f.RollingOut, f.Projected, f.ProjectedOver, f.ProjectedWarn)
	}
	// A minute later, 6 pods are its peak: a DaemonSet growing again from there is rolling out.
	for sec := int64(91); sec < 160; sec++ {
		d.Evaluate(snap(sec, 16, view(6)), &res)
	}
	v := view(7)
	v.LastGrowth = 160
	d.Evaluate(snap(160, 16, v), &res)
	if f := res.Findings[0]; !f.RollingOut {
		t.Fatalf("7 of 16 pods, growing past its peak of the last minute, is not taken as rolling out: %+v", f)
	}
}
