package killswitch

import (
	"strings"
	"testing"
)

// Finding 5: the switch matches protected workloads with the shared glob package (as the agents do), so it never
// trips Deployment/kube-system/coredns with the default list, nor DaemonSet/kube-system/* given as a pattern.
func TestProtectedGlobsNeverTrip(t *testing.T) {
	c := cfg()
	s := New(c)
	c.Protected = append(c.Protected, "DaemonSet/monitoring/*")
	g := New(c)
	for sec := int64(100); sec < 110; sec++ {
		for _, d := range s.Step(surging(sec, "Deployment/kube-system/coredns")) {
			if d.Action == ActionTrip {
				t.Fatalf("default list: tripped %s", d.Workload)
			}
		}
		for _, d := range g.Step(surging(sec, "daemonset/monitoring/telemetry", "DaemonSet/monitoring/x")) {
			if d.Action == ActionTrip {
				t.Fatalf("glob: tripped %s", d.Workload)
			}
		}
	}
	if _, err := s.Manual(120, true, "Deployment/kube-system/coredns", "x", 0); err == nil {
		t.Fatal("manual trip of a default-protected workload accepted")
	}
	if !s.Protected("DaemonSet/kube-system/kube-proxy") || s.Protected("DaemonSet/monitoring/telemetry") {
		t.Fatal("default list")
	}
	bad := cfg()
	bad.Protected = []string{"kube-system/*"}
	if err := bad.Validate(); err == nil {
		t.Fatal("two-segment pattern accepted")
	}
	if !New(bad).Protected("Deployment/default/web") {
		t.Fatal("a switch with a malformed list must fail safe (protect everything)")
	}
}

// A trip the agents refuse frees its MaxTrips slot (another workload can trip) and does not re-trip at once.
func TestRefusedTripFreesSlot(t *testing.T) {
	c := cfg()
	c.MaxTrips = 1
	s := New(c)
	sec := int64(100)
	for ; sec < 103; sec++ {
		s.Step(surging(sec, "DaemonSet/a/x"))
	}
	if st, _, _ := s.StateOf("DaemonSet/a/x"); st != Trip {
		t.Fatalf("not tripped: %s", st)
	}
	_, _, ep := s.StateOf("DaemonSet/a/x")
	if _, ok := s.Refuse(sec, "DaemonSet/a/x", ep+1, "protected"); ok {
		t.Fatal("refusal of another epoch accepted")
	}
	d, ok := s.Refuse(sec, "DaemonSet/a/x", ep, "protected")
	if !ok || d.Action != ActionAlert || !strings.Contains(d.Reason, "protected") || d.Evidence.Rule != "refused" {
		t.Fatalf("refuse: %v %+v", ok, d)
	}
	if len(s.Directives()) != 0 {
		t.Fatalf("refused trip still directed: %+v", s.Directives())
	}
	tripped := map[string]bool{}
	for sec++; sec < 112; sec++ { // MinHold is 10 s: no re-trip before 113
		for _, d := range s.Step(surging(sec, "DaemonSet/a/x", "DaemonSet/b/y")) {
			if d.Action == ActionTrip {
				tripped[d.Workload] = true
			}
		}
	}
	if !tripped["DaemonSet/b/y"] || tripped["DaemonSet/a/x"] {
		t.Fatalf("want only b/y tripped after the refusal, got %v", tripped)
	}
}

// Finding 1: a restarted switch restores its trips from a snapshot (same epoch, same hold) and adopts blocks agents
// report that it does not know, with the hold counted from the adoption: nothing is released early.
func TestSnapshotRestoreAndAdopt(t *testing.T) {
	s := New(cfg())
	sec := int64(100)
	for ; sec < 103; sec++ {
		s.Step(surging(sec, "DaemonSet/a/x"))
	}
	snap := s.Snapshot()
	if len(snap) != 1 || snap[0].State != "trip" || snap[0].Epoch != 102 || snap[0].Cause != "surge" {
		t.Fatalf("snapshot %+v", snap)
	}
	r := New(cfg())
	if n := r.Restore(snap); n != 1 {
		t.Fatalf("restored %d", n)
	}
	if ds := r.Directives(); len(ds) != 1 || !ds[0].Block || ds[0].Epoch != 102 {
		t.Fatalf("restored directives %+v", ds)
	}
	// Quiet seconds before MinHold (10 s from the trip at 102) release nothing.
	for sec = 103; sec < 112; sec++ {
		if ds := r.Step(quiet(sec, "DaemonSet/a/x")); len(ds) > 0 {
			t.Fatalf("restored trip decided at %d: %s", sec, actions(ds))
		}
	}
	// Adoption: a fresh switch learns the block from an agent at second 200; nothing releases before 210.
	a := New(cfg())
	d, ok := a.Adopt(200, "DaemonSet/a/x", 102, false)
	if !ok || d.Action != ActionTrip || d.Epoch != 102 {
		t.Fatalf("adopt: %v %+v", ok, d)
	}
	if _, ok := a.Adopt(201, "DaemonSet/a/x", 102, false); ok {
		t.Fatal("adopted twice")
	}
	if _, ok := a.Adopt(201, "Deployment/kube-system/coredns", 5, false); ok {
		t.Fatal("adopted a protected workload")
	}
	for sec = 201; sec < 210; sec++ {
		if ds := a.Step(quiet(sec, "DaemonSet/a/x")); len(ds) > 0 {
			t.Fatalf("adopted trip decided at %d: %s", sec, actions(ds))
		}
	}
	if ds := a.Step(quiet(210, "DaemonSet/a/x")); actions(ds) != "release:DaemonSet/a/x" {
		t.Fatalf("after the hold: %s", actions(ds))
	}
	if dir := a.Directives(); len(dir) != 1 || dir[0].Block || dir[0].RampSteps != 4 {
		t.Fatalf("release must ramp: %+v", dir)
	}
}
