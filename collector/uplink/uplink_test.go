package uplink

import (
	"log/slog"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/collector/agent"
	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/report"
)

type fakeEnforcer struct {
	applied []enforce.Directive
	blocked map[string]bool
	exempt  map[string]int
	refuse  string
}

func (f *fakeEnforcer) Apply(d enforce.Directive) error {
	if d.Workload == f.refuse {
		return enforce.ErrProtected
	}
	f.applied = append(f.applied, d)
	if d.Action == enforce.ActionBlock {
		f.blocked[d.Workload] = true
	} else {
		delete(f.blocked, d.Workload)
	}
	return nil
}

func (f *fakeEnforcer) Blocked() []enforce.BlockedWorkload {
	var out []enforce.BlockedWorkload
	for w := range f.blocked {
		out = append(out, enforce.BlockedWorkload{Workload: w, Pods: 1, Epoch: 7, Exempt: f.exempt[w]})
	}
	return out
}

func TestDirectivesReachTheEnforcerAndTheBlockedSetIsReported(t *testing.T) {
	enf := &fakeEnforcer{blocked: map[string]bool{}, refuse: "DaemonSet/kube-system/coredns"}
	u := New(enf, "v-test", slog.New(slog.DiscardHandler))

	u.HandleDirective(report.Directive{Block: true, Workload: "DaemonSet/mon/telemetry", Epoch: 7, TTL: time.Minute, Reason: "surge"})
	u.HandleDirective(report.Directive{Block: true, Workload: "DaemonSet/kube-system/coredns", Epoch: 8, TTL: time.Minute})
	if len(enf.applied) != 1 {
		t.Fatalf("applied %d directives, want 1 (the protected one is refused)", len(enf.applied))
	}
	got := enf.applied[0]
	if got.Action != enforce.ActionBlock || got.TTL != time.Minute || got.Workload != "DaemonSet/mon/telemetry" || got.Reason != "surge" {
		t.Fatalf("block mapped wrongly: %+v", got)
	}

	snap := agent.Snapshot{Node: "node-1", Seq: 3, Time: time.Unix(100, 0), Interval: time.Second,
		Pods: []agent.PodDelta{{UID: "u1", Namespace: "mon", Pod: "telemetry-x", Workload: "DaemonSet/mon/telemetry",
			Counts: agent.Counts{Connects: 1, Requests: 5, TxBytes: 500, RxBytes: 90000}}},
		Workloads: []agent.WorkloadDelta{{Workload: "DaemonSet/mon/telemetry", Pods: 1,
			Counts: agent.Counts{Connects: 1, Requests: 5, TxBytes: 500, RxBytes: 90000}}}}
	r := u.Report(snap, &api.AgentHealth{ProbesAttached: true})
	if r.GetNode() != "node-1" || r.GetInterval().AsDuration() != time.Second || r.GetTimestamp().AsTime().Unix() != 100 {
		t.Fatalf("report header: %v", r)
	}
	if len(r.GetPods()) != 1 || r.GetPods()[0].GetDelta().GetRxBytes() != 90000 || r.GetPods()[0].GetName() != "telemetry-x" {
		t.Fatalf("pod deltas: %v", r.GetPods())
	}
	if len(r.GetWorkloads()) != 1 || r.GetWorkloads()[0].GetDelta().GetRequests() != 5 || r.GetWorkloads()[0].GetPods() != 1 {
		t.Fatalf("workload deltas: %v", r.GetWorkloads())
	}
	if len(r.GetBlocked()) != 1 || r.GetBlocked()[0].GetEpoch() != 7 {
		t.Fatalf("blocked set: %v", r.GetBlocked())
	}
	// Closed loop: the refused (protected) trip is reported with its reason and epoch.
	if len(r.GetRefused()) != 1 || r.GetRefused()[0].GetWorkload() != "DaemonSet/kube-system/coredns" ||
		r.GetRefused()[0].GetReason() != enforce.ReasonProtected || r.GetRefused()[0].GetEpoch() != 8 {
		t.Fatalf("refusals: %v", r.GetRefused())
	}
	if r.GetHealth().GetVersion() != "v-test" {
		t.Fatalf("health version not filled: %v", r.GetHealth())
	}

	u.HandleDirective(report.Directive{Workload: "DaemonSet/mon/telemetry", Epoch: 7, RampDuration: 30 * time.Second, RampSteps: 5, RampJitter: time.Second})
	rel := enf.applied[len(enf.applied)-1]
	if rel.Action != enforce.ActionRelease || rel.Epoch != 7 || rel.Ramp != (enforce.Ramp{Duration: 30 * time.Second, Steps: 5, Jitter: time.Second}) {
		t.Fatalf("release mapped wrongly: %+v", rel)
	}
	if r := u.Report(snap, &api.AgentHealth{}); len(r.GetBlocked()) != 0 {
		t.Fatalf("released workload still reported blocked: %v", r.GetBlocked())
	}
}

func TestWithoutEnforcerDirectivesAreOnlyLogged(t *testing.T) {
	u := New(nil, "v", slog.New(slog.DiscardHandler))
	u.HandleDirective(report.Directive{Block: true, Workload: "DaemonSet/a/b"})
	if r := u.Report(agent.Snapshot{Node: "n"}, &api.AgentHealth{}); len(r.GetBlocked()) != 0 {
		t.Fatalf("no enforcer, yet blocked set %v", r.GetBlocked())
	}
}

// Finding 4: a workload with pods lifted by break-glass on this node is reported with break_glass set (the node does
// not fully enforce it); other blocked workloads are not.
func TestExemptPodsReportedAsBreakGlass(t *testing.T) {
	enf := &fakeEnforcer{blocked: map[string]bool{"Deployment/a/web": true, "Deployment/a/api": true},
		exempt: map[string]int{"Deployment/a/web": 1}}
	u := New(enf, "v", slog.New(slog.DiscardHandler))
	r := u.Report(agent.Snapshot{Node: "n"}, &api.AgentHealth{})
	got := map[string]bool{}
	for _, b := range r.GetBlocked() {
		got[b.GetWorkload()] = b.GetBreakGlass()
	}
	if len(got) != 2 || !got["Deployment/a/web"] || got["Deployment/a/api"] {
		t.Fatalf("blocked set break_glass = %v, want web only", got)
	}
}
