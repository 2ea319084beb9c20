package incident

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/latency"
	"github.com/fanoutdev/fanout/e2e/report"
)

func TestResultTimings(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := &Result{
		Nodes: 3, Guarded: true, System: []string{KubeProxy, NodeAgent}, TelemetryID: Telemetry, Recorder: fleet.NewRecorder(),
		Start: t0, Onset: t0.Add(10 * time.Second), IncidentEnd: t0.Add(40 * time.Second), End: t0.Add(60 * time.Second),
		Events: []Event{
			{At: t0.Add(5 * time.Second), Kind: "trip", Workload: Telemetry}, // before onset: ignored
			{At: t0.Add(12 * time.Second), Kind: "alert", Workload: Telemetry},
			{At: t0.Add(13 * time.Second), Kind: "trip", Workload: Telemetry},
			{At: t0.Add(13100 * time.Millisecond), Kind: "enforced", Workload: Telemetry, Node: "node-1"},
			{At: t0.Add(13300 * time.Millisecond), Kind: "enforced", Workload: Telemetry, Node: "node-3"},
			{At: t0.Add(13200 * time.Millisecond), Kind: "enforced", Workload: Telemetry, Node: "node-2"},
			{At: t0.Add(14 * time.Second), Kind: "enforced", Workload: Telemetry, Node: "node-2"}, // repeat: first counts
			{At: t0.Add(30 * time.Second), Kind: "alert", Workload: KubeProxy},                    // alerts do not act
			{At: t0.Add(45 * time.Second), Kind: "release", Workload: Telemetry},
		},
	}
	if d, ok := r.TripAfterOnset(); !ok || d != 3*time.Second {
		t.Fatalf("onset->trip %s %v", d, ok)
	}
	if d, ok := r.EnforcedEverywhere(); !ok || d != 300*time.Millisecond {
		t.Fatalf("trip->enforced everywhere %s %v", d, ok)
	}
	if _, _, _, ok := r.LateStarts(); ok {
		t.Fatal("no pod start recorded: no late start")
	}
	// node-3's pod started 0.2 s after the trip (the harness creates pods through the overloaded API server) and was
	// blocked 0.1 s after its start; the others started before the trip.
	r.TelemetryStarted = map[string]time.Time{"node-1": t0.Add(10 * time.Second), "node-2": t0.Add(11 * time.Second), "node-3": t0.Add(13200 * time.Millisecond)}
	if n, last, block, ok := r.LateStarts(); !ok || n != 1 || last != 200*time.Millisecond || block != 100*time.Millisecond {
		t.Fatalf("late starts %d, last %s, slowest block %s, %v: want 1, 200ms, 100ms", n, last, block, ok)
	}
	var sum bytes.Buffer
	r.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "1 of 3 telemetry pods started after the trip") {
		t.Fatalf("summary does not explain the late pod:\n%s", sum.String())
	}
	r.TelemetryStarted = nil
	if n := len(r.Touched()); n != 0 {
		t.Fatalf("touched %d", n)
	}
	r.Nodes = 4
	if _, ok := r.EnforcedEverywhere(); ok {
		t.Fatal("a node without enforcement must fail EnforcedEverywhere")
	}
	r.Events = append(r.Events, Event{At: t0.Add(20 * time.Second), Kind: "trip", Workload: NodeAgent})
	if n := len(r.Touched()); n != 1 {
		t.Fatalf("touched %d, want 1", n)
	}
}

func TestResultPhasesAndReport(t *testing.T) {
	t0 := time.Unix(2000, 0)
	rec := fleet.NewRecorder()
	var probe []latency.Sample
	for s := 0; s < 30; s++ {
		rec.Add(KubeProxy, fleet.Sample{T: float64(2000+s) + 1.0, OK: 8})
		lat := 2 * time.Millisecond
		if s >= 10 && s < 20 {
			rec.Add(Telemetry, fleet.Sample{T: float64(2000+s) + 1.0, OK: 30})
			lat = 300 * time.Millisecond
		}
		for k := 0; k < 10; k++ {
			probe = append(probe, latency.Sample{At: t0.Add(time.Duration(s)*time.Second + time.Duration(k)*100*time.Millisecond), Latency: lat})
		}
	}
	r := &Result{Nodes: 2, System: []string{KubeProxy}, TelemetryID: Telemetry, Recorder: rec, Probe: probe,
		Start: t0, Onset: t0.Add(10 * time.Second), IncidentEnd: t0.Add(20 * time.Second), End: t0.Add(30 * time.Second)}
	ph := r.Phases()
	if len(ph) != 3 || ph[0].Rate[KubeProxy] != 8 || ph[0].Rate[Telemetry] != 0 || ph[1].Rate[Telemetry] != 30 ||
		ph[1].Probe.P50 != 300*time.Millisecond || ph[2].Probe.P99 != 2*time.Millisecond {
		t.Fatalf("phases %+v", ph)
	}
	var sum bytes.Buffer
	r.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "UNPROTECTED") || !strings.Contains(sum.String(), "p50=300ms") {
		t.Fatalf("summary:\n%s", sum.String())
	}
	var page bytes.Buffer
	if err := report.Write(&page, r.Report("t")); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(page.String(), "<svg "); n != 3 { // calls, refused calls, latency
		t.Fatalf("%d charts", n)
	}
	if n := strings.Count(page.String(), `<polyline class="series"`); n != 6 { // 2 workloads x 2 + p50 + p99
		t.Fatalf("%d series", n)
	}
}

func TestResultRelease(t *testing.T) {
	t0 := time.Unix(3000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := &Result{
		Nodes: 4, Guarded: true, System: []string{KubeProxy, NodeAgent}, TelemetryID: Telemetry, Recorder: fleet.NewRecorder(),
		Start: t0, Onset: at(10000), IncidentEnd: at(30000), End: at(60000),
		Events: []Event{
			{At: at(15000), Kind: "trip", Workload: Telemetry},
			{At: at(15100), Kind: "enforced", Workload: Telemetry, Node: "node-1"},
			// The rollback deletes the old pods: a node may show 0 blocked for a poll before the new pod is blocked.
			{At: at(30100), Kind: "released", Workload: Telemetry, Node: "node-1"},
			{At: at(30200), Kind: "enforced", Workload: Telemetry, Node: "node-1"},
			{At: at(35000), Kind: "release", Workload: Telemetry, Detail: "manual: rolled back"},
			{At: at(36000), Kind: "released", Workload: Telemetry, Node: "node-2"},
			{At: at(36100), Kind: "released", Workload: Telemetry, Node: "node-3"}, // same step as node-2
			{At: at(41000), Kind: "released", Workload: Telemetry, Node: "node-1"},
			{At: at(47000), Kind: "released", Workload: Telemetry, Node: "node-4"},
			{At: at(48000), Kind: "released", Workload: Telemetry, Node: "node-4"}, // repeat: first counts
		},
	}
	rel, ok := r.Release()
	if !ok {
		t.Fatal("no release")
	}
	if !rel.At.Equal(at(35000)) || rel.Detail != "manual: rolled back" {
		t.Fatalf("release %+v", rel)
	}
	var nodes []string
	for _, e := range rel.Readmitted {
		nodes = append(nodes, e.Node)
	}
	if got := strings.Join(nodes, ","); got != "node-2,node-3,node-1,node-4" {
		t.Fatalf("re-admitted %s", got)
	}
	if rel.Steps != 3 || rel.Span != 11*time.Second {
		t.Fatalf("steps %d span %s, want 3 over 11s", rel.Steps, rel.Span)
	}
	var names []string
	for _, p := range r.Phases() {
		names = append(names, p.Name)
	}
	if got := strings.Join(names, ","); got != "baseline,incident,held,release,after" {
		t.Fatalf("phases %s", got)
	}
	if p := r.Phases()[3]; !p.From.Equal(at(35000)) || !p.To.Equal(at(48000)) {
		t.Fatalf("release phase %s..%s", p.From, p.To)
	}
	rep := r.Report("release")
	var ramp string
	for _, row := range rep.Summary {
		if row.Label == "release ramp" {
			ramp = row.Value
		}
	}
	if ramp != "4 of 4 nodes re-admitted in 3 steps over 11s" {
		t.Fatalf("release ramp row %q", ramp)
	}
	var readmitMarks int
	for _, m := range rep.Charts[0].Marks {
		if m.Kind == "release" {
			readmitMarks++
		}
	}
	if readmitMarks != 5 { // the release decision and 4 re-admissions
		t.Fatalf("%d release marks, want 5", readmitMarks)
	}
	var steps []string
	for _, m := range rep.Charts[0].Marks {
		if strings.HasPrefix(m.Label, "ramp step") {
			steps = append(steps, m.Label)
		}
	}
	if got := strings.Join(steps, "; "); got != "ramp step 1/3: +2 nodes; ramp step 2/3: +1 node; ramp step 3/3: +1 node" {
		t.Fatalf("every ramp step must be labelled: %q", got)
	}
	r.Events = r.Events[:4] // no release: one recovery phase
	if _, ok := r.Release(); ok {
		t.Fatal("release without a release event")
	}
	if n := len(r.Phases()); n != 3 {
		t.Fatalf("%d phases without a release, want 3", n)
	}
}

// TestCombinedReport: dry-run and armed side by side (a column each, one panel per chart), the dry-run's enforcement
// row says it was not enforced, protected workloads' alerts are explained.
func TestCombinedReport(t *testing.T) {
	t0 := time.Unix(4000, 0)
	mk := func(mode string) *Result {
		r := &Result{Nodes: 2, Guarded: true, Mode: mode, System: []string{KubeProxy, NodeAgent}, TelemetryID: Telemetry, Recorder: fleet.NewRecorder(),
			Start: t0, Onset: t0.Add(10 * time.Second), IncidentEnd: t0.Add(20 * time.Second), End: t0.Add(30 * time.Second),
			Events: []Event{{At: t0.Add(12 * time.Second), Kind: "trip", Workload: Telemetry, Detail: "dry-run: would trip"},
				{At: t0.Add(13 * time.Second), Kind: "alert", Workload: KubeProxy}}}
		if mode == "armed" {
			r.Events[0].Detail = "surge"
			for _, n := range []string{"node-1", "node-2"} {
				r.Events = append(r.Events, Event{At: t0.Add(12200 * time.Millisecond), Kind: "enforced", Workload: Telemetry, Node: n})
			}
		}
		return r
	}
	rep := CombinedReport("demo", Labeled{"dry-run", mk("dry-run")}, Labeled{"armed", mk("armed")})
	if len(rep.Columns) != 2 || len(rep.Panels) != 3 || len(rep.Panels[0].Charts) != 2 || len(rep.Intro) != 1 {
		t.Fatalf("columns %v, %d panels, intro %d", rep.Columns, len(rep.Panels), len(rep.Intro))
	}
	found := false
	for _, row := range rep.Summary {
		if row.Label == "trip → enforced on every node" {
			found = true
			if row.Values[0] != "not enforced (dry-run)" || row.Values[1] != "200ms" {
				t.Fatalf("enforcement row %q", row.Values)
			}
		}
	}
	if !found {
		t.Fatal("no enforcement row")
	}
	var labels []string
	for _, m := range rep.Panels[0].Charts[0].Marks {
		labels = append(labels, m.Label)
	}
	joined := strings.Join(labels, "|")
	if !strings.Contains(joined, "(dry-run: not enforced)") || !strings.Contains(joined, "alert "+KubeProxy+" (protected: reported only)") {
		t.Fatalf("marks %q", joined)
	}
	if len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "protected") {
		t.Fatalf("no note on protected workloads' alerts: %q", rep.Notes)
	}
	var page bytes.Buffer
	if err := report.Write(&page, rep); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(page.String(), "<svg "); n != 6 {
		t.Fatalf("%d charts, want 6", n)
	}
}
