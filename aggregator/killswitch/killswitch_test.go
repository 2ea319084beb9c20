package killswitch

import (
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/aggregator/detect"
	"github.com/fanoutdev/fanout/aggregator/fleet"
)

func surging(sec int64, names ...string) *detect.Result {
	r := &detect.Result{Second: sec, Utilization: 0.9}
	for _, n := range names {
		r.Findings = append(r.Findings, detect.Finding{Workload: n, Surge: true, Threat: true, CollapseETA: -1,
			View: fleet.View{Name: n, SyncNodes: 50, EstablishedNodes: 100}})
	}
	return r
}

func quiet(sec int64, names ...string) *detect.Result {
	r := &detect.Result{Second: sec, Utilization: 0.3}
	for _, n := range names {
		r.Findings = append(r.Findings, detect.Finding{Workload: n, CollapseETA: -1, View: fleet.View{Name: n}})
	}
	return r
}

func cfg() Config {
	c := DefaultConfig()
	c.SurgeSustain, c.MinHold, c.RampDuration, c.RampJitter, c.ReleasedHold = 3*time.Second, 10*time.Second, 8*time.Second, 0, 5*time.Second
	return c
}

func actions(ds []Decision) string {
	var s []string
	for _, d := range ds {
		s = append(s, string(d.Action)+":"+d.Workload)
	}
	return strings.Join(s, ",")
}

func TestSurgeTripsAfterSustainThenReleasesWithRamp(t *testing.T) {
	s := New(cfg())
	var log []string
	for sec := int64(100); sec < 103; sec++ {
		if a := actions(s.Step(surging(sec, "DaemonSet/a/x"))); a != "" {
			log = append(log, a)
		}
	}
	if strings.Join(log, ";") != "alert:DaemonSet/a/x;trip:DaemonSet/a/x" {
		t.Fatalf("got %v", log)
	}
	if st, _, ep := s.StateOf("DaemonSet/a/x"); st != Trip || ep != 102 {
		t.Fatalf("state %s epoch %d", st, ep)
	}
	ds := s.Directives()
	if len(ds) != 1 || !ds[0].Block || ds[0].Epoch != 102 {
		t.Fatalf("directives %+v", ds)
	}
	// Minimum hold: nothing before 10 s, then a release with a ramp.
	var rel []Decision
	for sec := int64(103); sec < 115 && len(rel) == 0; sec++ {
		rel = s.Step(quiet(sec, "DaemonSet/a/x"))
		if len(rel) > 0 && sec < 112 {
			t.Fatalf("released at %d before the minimum hold", sec)
		}
	}
	if actions(rel) != "release:DaemonSet/a/x" {
		t.Fatalf("got %v", actions(rel))
	}
	ds = s.Directives()
	if len(ds) != 1 || ds[0].Block || ds[0].RampSteps == 0 {
		t.Fatalf("release directive %+v", ds)
	}
	// The surge returns during the ramp: trip again with a new epoch.
	var re []Decision
	for sec := int64(120); sec < 123; sec++ {
		re = s.Step(surging(sec, "DaemonSet/a/x"))
	}
	if actions(re) != "trip:DaemonSet/a/x" || re[0].Epoch != 122 {
		t.Fatalf("re-trip: %+v", re)
	}
}

func TestProtectedDryRunAndMaxTrips(t *testing.T) {
	c := cfg()
	c.Protected = []string{"DaemonSet/kube-system/kube-proxy"}
	c.MaxTrips = 1
	s := New(c)
	var all []Decision
	for sec := int64(0); sec < 5; sec++ {
		all = append(all, s.Step(surging(sec, "DaemonSet/kube-system/kube-proxy", "DaemonSet/a/x", "DaemonSet/b/y"))...)
	}
	trips := 0
	for _, d := range all {
		if d.Action == ActionTrip {
			trips++
			if d.Workload == "DaemonSet/kube-system/kube-proxy" {
				t.Fatal("protected workload tripped")
			}
		}
	}
	if trips != 1 {
		t.Fatalf("max trips 1, got %d: %s", trips, actions(all))
	}
	var sawProtected, sawCap bool
	for _, d := range all {
		sawProtected = sawProtected || strings.HasPrefix(d.Reason, "protected workload")
		sawCap = sawCap || strings.HasPrefix(d.Reason, "max concurrent trips")
	}
	if !sawProtected || !sawCap {
		t.Fatalf("want protected and cap alerts: %s", actions(all))
	}

	c.DryRun = true
	d := New(c)
	var got []Decision
	for sec := int64(0); sec < 5; sec++ {
		got = append(got, d.Step(surging(sec, "DaemonSet/a/x"))...)
	}
	if len(d.Directives()) != 0 {
		t.Fatal("dry-run produced directives")
	}
	if got[len(got)-1].Action != ActionTrip || !got[len(got)-1].DryRun || !strings.HasPrefix(got[len(got)-1].Reason, "dry-run: ") {
		t.Fatalf("dry-run decision %+v", got[len(got)-1])
	}
}

func TestFleetWideSurgeSuppressesTrips(t *testing.T) {
	s := New(cfg())
	for sec := int64(0); sec < 20; sec++ {
		r := surging(sec, "DaemonSet/a/x", "DaemonSet/b/y", "Deployment/c/z")
		r.FleetWide = sec == 0
		for _, d := range s.Step(r) {
			if d.Action == ActionTrip {
				t.Fatalf("tripped %s during a fleet-wide surge", d.Workload)
			}
		}
	}
}

func TestManualTripAndRelease(t *testing.T) {
	s := New(cfg())
	d, err := s.Manual(50, true, "Deployment/a/b", "runaway", time.Minute)
	if err != nil || d.Action != ActionTrip || !d.Manual {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := s.Manual(51, true, "Deployment/a/b", "again", 0); err == nil {
		t.Fatal("double trip accepted")
	}
	// Automatic release never touches a manual trip before its TTL.
	for sec := int64(51); sec < 100; sec++ {
		if ds := s.Step(quiet(sec, "Deployment/a/b")); len(ds) > 0 {
			t.Fatalf("auto decision on a manual trip at %d: %s", sec, actions(ds))
		}
	}
	ds := s.Step(quiet(110, "Deployment/a/b"))
	if actions(ds) != "release:Deployment/a/b" {
		t.Fatalf("TTL expiry: %s", actions(ds))
	}
	s.Protect("Deployment/p/q")
	if _, err := s.Manual(120, true, "Deployment/p/q", "x", 0); err == nil {
		t.Fatal("manual trip of a protected workload accepted")
	}
}

// Traffic the agents could not attribute to a workload, or host processes, cannot be blocked by workload name:
// such surges alert, never trip.
func TestUnattributedTrafficAlertsButNeverTrips(t *testing.T) {
	s := New(cfg())
	refused := map[string]bool{}
	for sec := int64(100); sec < 110; sec++ {
		for _, d := range s.Step(surging(sec, "Unknown//cgroup-1234", "SystemdUnit//kubelet.service")) {
			if d.Action != ActionAlert {
				t.Fatalf("%s %s: unattributed traffic must only alert (%s)", d.Action, d.Workload, d.Reason)
			}
			if strings.Contains(d.Reason, "cannot enforce") {
				refused[d.Workload] = true
			}
		}
	}
	if !refused["Unknown//cgroup-1234"] || !refused["SystemdUnit//kubelet.service"] {
		t.Fatalf("want a 'cannot enforce' alert for both, got %v", refused)
	}
	if len(s.Directives()) != 0 {
		t.Fatalf("directives for unattributed traffic: %+v", s.Directives())
	}
}

// Evidence gathered while a workload was blocked must not re-trip it the moment it is released: the returning pods
// have to show the surge again for the full sustain time. A releasing workload is no longer frozen in the model.
func TestReleaseStartsEvidenceAfresh(t *testing.T) {
	s := New(cfg())
	sec := int64(100)
	for ; sec < 103; sec++ {
		s.Step(surging(sec, "DaemonSet/a/x"))
	}
	if b := s.Blocking(); len(b) != 1 || b[0] != "DaemonSet/a/x" {
		t.Fatalf("tripped workload not blocking: %v", b)
	}
	// The surge-caused trip releases itself after the minimum hold, even though the (blocked) workload still looks
	// surging to the model.
	for ; sec < 130; sec++ {
		s.Step(surging(sec, "DaemonSet/a/x"))
		if st, _, _ := s.StateOf("DaemonSet/a/x"); st == Releasing {
			break
		}
	}
	if st, _, _ := s.StateOf("DaemonSet/a/x"); st != Releasing {
		t.Fatalf("want releasing after the hold, got %s", st)
	}
	if b := s.Blocking(); len(b) != 0 {
		t.Fatalf("a releasing workload must not be frozen: blocking %v", b)
	}
	// Two more surging seconds are not enough to re-trip (sustain is 3 s) ...
	for i := 0; i < 2; i++ {
		sec++
		if a := actions(s.Step(surging(sec, "DaemonSet/a/x"))); strings.Contains(a, "trip") {
			t.Fatalf("re-tripped %d s after the release on evidence from before it: %s", i+1, a)
		}
	}
	// ... but a surge that persists for the sustain time does.
	sec++
	if a := actions(s.Step(surging(sec, "DaemonSet/a/x"))); !strings.Contains(a, "trip:DaemonSet/a/x") {
		t.Fatalf("a surge that persists after the release must re-trip, got %q", a)
	}
}

// overloaded is a saturated API server whose load above baseline is spread as shares (workload -> excess share), all
// workloads bunching together (a fleet-wide surge as the saturation makes every client's calls arrive at once).
func overloaded(sec int64, shares map[string]float64) *detect.Result {
	r := &detect.Result{Second: sec, Utilization: 1.2, Overloaded: true, FleetWide: true}
	for _, w := range []string{"DaemonSet/kube-system/kube-proxy", "DaemonSet/monitoring/telemetry", "Deployment/a/b", "Deployment/c/d"} {
		f := detect.Finding{Workload: w, Surge: true, CollapseETA: -1, ExcessShare: shares[w], View: fleet.View{Name: w}}
		if f.ExcessShare >= 0.1 {
			f.Contributor = true
			r.Contributors = append(r.Contributors, w)
		}
		r.Findings = append(r.Findings, f)
	}
	// Contributors by share, largest first, as detect orders them.
	for i := 1; i < len(r.Contributors); i++ {
		for j := i; j > 0 && shares[r.Contributors[j]] > shares[r.Contributors[j-1]]; j-- {
			r.Contributors[j], r.Contributors[j-1] = r.Contributors[j-1], r.Contributors[j]
		}
	}
	return r
}

// An overload one workload carries trips it even while every workload's calls surge together; an overload spread
// over many workloads during a fleet-wide surge (a relist after an API server restart) trips nothing.
func TestOverloadTripDuringFleetWideSurgeOnlyWhenOneWorkloadDominates(t *testing.T) {
	s := New(cfg())
	tripped := ""
	for sec := int64(0); sec < 60 && tripped == ""; sec++ {
		for _, d := range s.Step(overloaded(sec, map[string]float64{"DaemonSet/monitoring/telemetry": 0.9, "Deployment/a/b": 0.05, "Deployment/c/d": 0.1})) {
			if d.Action == ActionTrip {
				tripped = d.Workload
			}
		}
	}
	if tripped != "DaemonSet/monitoring/telemetry" {
		t.Fatalf("dominant overload contributor not tripped during a fleet-wide surge (tripped %q)", tripped)
	}
	s = New(cfg())
	for sec := int64(0); sec < 60; sec++ {
		for _, d := range s.Step(overloaded(sec, map[string]float64{"DaemonSet/monitoring/telemetry": 0.3, "Deployment/a/b": 0.25, "Deployment/c/d": 0.3})) {
			if d.Action == ActionTrip {
				t.Fatalf("tripped %s for an overload spread over a fleet-wide surge", d.Workload)
			}
		}
	}
}

// A top overload contributor no block can act on (a rollout's pod cgroup not yet attributed to its workload) is
// passed over for the next one, which carries the rise among the workloads that can be blocked.
func TestOverloadTripPassesOverUnattributedTraffic(t *testing.T) {
	s := New(cfg())
	tripped := ""
	for sec := int64(0); sec < 60 && tripped == ""; sec++ {
		r := overloaded(sec, map[string]float64{"DaemonSet/monitoring/telemetry": 0.5, "Deployment/a/b": 0.05})
		f := detect.Finding{Workload: "Unknown//cgroup-42", Contributor: true, ExcessShare: 0.9, CollapseETA: -1,
			View: fleet.View{Name: "Unknown//cgroup-42"}}
		r.Findings = append(r.Findings, f)
		r.Contributors = append([]string{f.Workload}, r.Contributors...)
		for _, d := range s.Step(r) {
			if d.Action == ActionTrip {
				tripped = d.Workload
			}
		}
	}
	if tripped != "DaemonSet/monitoring/telemetry" {
		t.Fatalf("tripped %q, want the telemetry DaemonSet behind the unattributed cgroup", tripped)
	}
}
