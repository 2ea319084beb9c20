package incident

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/latency"
	"github.com/fanoutdev/fanout/e2e/report"
)

// Result is what a replay measured.
type Result struct {
	Nodes, SeedPods, TelemetryWorkers int
	Guarded                           bool
	Mode                              string // as Config.Mode
	// Start is when the probe began (t=0 of the plots); Onset when the first telemetry pod started; IncidentEnd
	// when the incident window closed; End when the run stopped.
	Start, Onset, IncidentEnd, End time.Time
	System                         []string
	TelemetryID                    string
	Recorder                       *fleet.Recorder
	Probe                          []latency.Sample
	Events                         []Event
	// RolledBack is when the telemetry DaemonSet was rolled back to light GETs (zero: no rollback); ReleaseAsked when
	// the operator ran the manual release (zero: none) and ReleaseOutput what it printed.
	RolledBack, ReleaseAsked time.Time
	ReleaseOutput            string
	// AgentRequests is each node's agent's requests to the API server over the whole run (from the audit log);
	// AggregatorRequests the aggregator's own (its /metrics scrapes and placement watches).
	AgentRequests      map[string]int
	AggregatorRequests int
	// TelemetryTool names the real tool the telemetry pods ran (empty: podload's LISTs).
	TelemetryTool string
	// CPU is each group's CPU use per second (CPUAPIServer, CPUTelemetry, ...): the confound of a heavy client on a
	// machine it shares with the API server.
	CPU map[string][]CPUPoint
	// Metrics are the guard's own metrics over time (Metered), nil otherwise.
	Metrics []MetricSeries
	// TelemetryStarted is when each node's telemetry pod started (by node name). The harness creates the pods
	// through the API server the telemetry overloads, so a node's pod may start long after the onset, and after the
	// trip: the enforcement on that node then begins with the pod, not with the trip.
	TelemetryStarted map[string]time.Time
}

// Phase is one named window of the run.
type Phase struct {
	Name     string
	From, To time.Time
	Probe    latency.Stats
	// Rate is each workload's successful calls per second (fleet-wide), Denied its refused ones per second.
	Rate, Denied map[string]float64
}

// Phases are baseline [Start, Onset), incident [Onset, IncidentEnd), then recovery [IncidentEnd, End); when the
// telemetry workload was released after IncidentEnd and re-admitted on some node, recovery is split into held (still
// blocked) [IncidentEnd, release), release (the ramp) [release, last re-admission + 1s) and after [.., End).
func (r *Result) Phases() []Phase {
	var out []Phase
	type window struct {
		name     string
		from, to time.Time
	}
	windows := []window{{"baseline", r.Start, r.Onset}, {"incident", r.Onset, r.IncidentEnd}, {"recovery", r.IncidentEnd, r.End}}
	if rel, ok := r.Release(); ok && len(rel.Readmitted) > 0 && rel.At.After(r.IncidentEnd) {
		end := rel.Readmitted[len(rel.Readmitted)-1].At.Add(time.Second)
		if end.After(r.End) {
			end = r.End
		}
		windows = append(windows[:2], window{"held", r.IncidentEnd, rel.At}, window{"release", rel.At, end}, window{"after", end, r.End})
	}
	for _, w := range windows {
		if !w.to.After(w.from) {
			continue
		}
		p := Phase{Name: w.name, From: w.from, To: w.to, Rate: map[string]float64{}, Denied: map[string]float64{}}
		p.Probe, _ = latency.Summarize(between(r.Probe, w.from, w.to))
		from, to := w.from.Unix(), w.to.Unix()
		secs := float64(max(to-from, 1))
		for _, id := range append(append([]string(nil), r.System...), r.TelemetryID) {
			s := r.Recorder.Sum(id, from, to)
			p.Rate[id] = float64(s.OK) / secs
			p.Denied[id] = float64(s.Denied+s.Err) / secs
		}
		out = append(out, p)
	}
	return out
}

func between(s []latency.Sample, from, to time.Time) []latency.Sample {
	var out []latency.Sample
	for _, x := range s {
		if !x.At.Before(from) && x.At.Before(to) {
			out = append(out, x)
		}
	}
	return out
}

// FirstEvent is the first event of kind for workload at or after t.
func (r *Result) FirstEvent(kind, workload string, t time.Time) (Event, bool) {
	for _, e := range r.Events {
		if e.Kind == kind && e.Workload == workload && !e.At.Before(t) {
			return e, true
		}
	}
	return Event{}, false
}

// TripAfterOnset is onset -> the telemetry workload's first trip.
func (r *Result) TripAfterOnset() (time.Duration, bool) {
	e, ok := r.FirstEvent("trip", r.TelemetryID, r.Onset)
	return e.At.Sub(r.Onset), ok
}

// firstEnforced is each node's first "enforced" event of the telemetry workload at or after its trip.
func (r *Result) firstEnforced() (trip Event, first map[string]time.Time, ok bool) {
	trip, ok = r.FirstEvent("trip", r.TelemetryID, r.Onset)
	if !ok {
		return Event{}, nil, false
	}
	first = map[string]time.Time{}
	for _, e := range r.Events {
		if e.Kind == "enforced" && e.Workload == r.TelemetryID && !e.At.Before(trip.At) {
			if _, seen := first[e.Node]; !seen {
				first[e.Node] = e.At
			}
		}
	}
	return trip, first, true
}

// LateStarts describes the nodes whose telemetry pod started after the trip: how many, the latest start after the
// trip, and the longest time from such a pod's start to its node's first "enforced" event (its block from its first
// call). ok is false when no pod started after the trip or one of them was never enforced.
func (r *Result) LateStarts() (n int, lastStart, slowestBlock time.Duration, ok bool) {
	trip, first, found := r.firstEnforced()
	if !found {
		return 0, 0, 0, false
	}
	for node, started := range r.TelemetryStarted {
		if !started.After(trip.At) {
			continue
		}
		n++
		lastStart = max(lastStart, started.Sub(trip.At))
		enforced, seen := first[node]
		if !seen {
			return n, lastStart, 0, false
		}
		slowestBlock = max(slowestBlock, enforced.Sub(started))
	}
	return n, lastStart, slowestBlock, n > 0
}

// lateStartsNote explains an enforcement time that waited for pods started after the trip ("" when none did).
func (r *Result) lateStartsNote() string {
	n, last, block, ok := r.LateStarts()
	if !ok {
		return ""
	}
	return fmt.Sprintf(" (%d of %d telemetry pods started after the trip, the last %s after it; each blocked within %s of its start)",
		n, r.Nodes, last.Round(100*time.Millisecond), block.Round(time.Millisecond))
}

// EnforcedEverywhere is trip -> the last node's first "enforced" event; false unless every node reported one.
func (r *Result) EnforcedEverywhere() (time.Duration, bool) {
	trip, first, ok := r.firstEnforced()
	if !ok || len(first) < r.Nodes {
		return 0, false
	}
	var last time.Time
	for _, t := range first {
		if t.After(last) {
			last = t
		}
	}
	return last.Sub(trip.At), true
}

// Release is the telemetry workload's release after its trip, as fanout reported it.
type Release struct {
	// At is the release decision (the aggregator's audit record); Detail its reason.
	At     time.Time
	Detail string
	// Readmitted is each node's re-admission (its agent's fanout_agent_blocks_active for the workload fell to 0),
	// first per node, in time order.
	Readmitted []Event
	// Steps counts distinct re-admission moments (re-admissions more than StepGap apart); Span is first -> last.
	Steps int
	Span  time.Duration
}

// StepGap separates two re-admission steps (the guard polls agents every 100 ms).
const StepGap = 300 * time.Millisecond

// Release returns the first release of the telemetry workload after its trip, with each node's re-admission.
func (r *Result) Release() (Release, bool) {
	trip, ok := r.FirstEvent("trip", r.TelemetryID, r.Onset)
	if !ok {
		return Release{}, false
	}
	ev, ok := r.FirstEvent("release", r.TelemetryID, trip.At)
	if !ok {
		return Release{}, false
	}
	rel := Release{At: ev.At, Detail: ev.Detail}
	seen := map[string]bool{}
	for _, e := range r.Events {
		// Agents report re-admission by polling; the audit record may be stamped a little after the directive.
		if e.Kind == "released" && e.Workload == r.TelemetryID && !e.At.Before(ev.At.Add(-time.Second)) && !seen[e.Node] {
			seen[e.Node] = true
			rel.Readmitted = append(rel.Readmitted, e)
		}
	}
	sort.SliceStable(rel.Readmitted, func(i, j int) bool { return rel.Readmitted[i].At.Before(rel.Readmitted[j].At) })
	for i, e := range rel.Readmitted {
		if i == 0 || e.At.Sub(rel.Readmitted[i-1].At) > StepGap {
			rel.Steps++
		}
	}
	if n := len(rel.Readmitted); n > 0 {
		rel.Span = rel.Readmitted[n-1].At.Sub(rel.Readmitted[0].At)
	}
	return rel, true
}

// EnforcedWindow is when the block held everywhere: from enforcement on the last node plus settle, to the
// telemetry workload's release (or the end of the run).
func (r *Result) EnforcedWindow(settle time.Duration) (from, to time.Time, ok bool) {
	enforced, ok := r.EnforcedEverywhere()
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	trip, _ := r.FirstEvent("trip", r.TelemetryID, r.Onset)
	from = trip.At.Add(enforced + settle)
	to = r.End
	if rel, ok := r.FirstEvent("release", r.TelemetryID, trip.At); ok {
		to = rel.At
	}
	return from, to, to.After(from)
}

// Touched lists the events that acted on a system workload (must be none).
func (r *Result) Touched() []Event {
	var out []Event
	for _, e := range r.Events {
		for _, s := range r.System {
			if e.Workload == s && e.Kind != "alert" {
				out = append(out, e)
			}
		}
	}
	return out
}

// WriteSummary prints the final account.
func (r *Result) WriteSummary(w io.Writer) {
	mode := "UNPROTECTED (no fanout)"
	if r.Guarded {
		mode = "guarded by fanout"
	}
	if r.Mode != "" {
		mode = "fanout " + r.Mode
	}
	fmt.Fprintf(w, "\n=== summary: %d nodes, %d seeded pods, %s ===\n", r.Nodes, r.SeedPods, mode)
	for _, p := range r.Phases() {
		fmt.Fprintf(w, "%-9s %5.0fs  unrelated GET %s\n", p.Name, p.To.Sub(p.From).Seconds(), p.Probe)
		ids := make([]string, 0, len(p.Rate))
		for id := range p.Rate {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			fmt.Fprintf(w, "          %-45s %8.1f calls/s ok  %8.1f/s failed or denied\n", id, p.Rate[id], p.Denied[id])
		}
	}
	if r.Guarded {
		if d, ok := r.TripAfterOnset(); ok {
			fmt.Fprintf(w, "onset -> trip:                  %s\n", d.Round(time.Millisecond))
		} else {
			fmt.Fprintf(w, "onset -> trip:                  NO TRIP\n")
		}
		if d, ok := r.EnforcedEverywhere(); ok {
			fmt.Fprintf(w, "trip -> enforced on all nodes:  %s%s\n", d.Round(time.Millisecond), r.lateStartsNote())
		} else if r.Mode == "dry-run" {
			fmt.Fprintf(w, "trip -> enforced on all nodes:  not enforced (dry-run)\n")
		} else {
			fmt.Fprintf(w, "trip -> enforced on all nodes:  NOT ON EVERY NODE\n")
		}
		fmt.Fprintf(w, "system workloads acted on:      %d\n", len(r.Touched()))
		if !r.RolledBack.IsZero() {
			fmt.Fprintf(w, "rollback to light GETs:         t=%.0fs\n", r.RolledBack.Sub(r.Start).Seconds())
		}
		if !r.ReleaseAsked.IsZero() {
			fmt.Fprintf(w, "operator release (fanoutctl):   t=%.0fs: %s\n", r.ReleaseAsked.Sub(r.Start).Seconds(), r.ReleaseOutput)
		}
		if rel, ok := r.Release(); ok {
			fmt.Fprintf(w, "release decision:               t=%.1fs (%s)\n", rel.At.Sub(r.Start).Seconds(), rel.Detail)
			if len(rel.Readmitted) > 0 {
				var parts []string
				for _, e := range rel.Readmitted {
					parts = append(parts, fmt.Sprintf("%s +%.1fs", e.Node, e.At.Sub(rel.At).Seconds()))
				}
				fmt.Fprintf(w, "re-admitted:                    %d of %d nodes in %d steps over %s (%s)\n", len(rel.Readmitted), r.Nodes,
					rel.Steps, rel.Span.Round(100*time.Millisecond), strings.Join(parts, ", "))
			}
			if again, ok := r.FirstEvent("trip", r.TelemetryID, rel.At); ok {
				fmt.Fprintf(w, "RE-TRIPPED after the release:   t=%.1fs (%s)\n", again.At.Sub(r.Start).Seconds(), again.Detail)
			}
		}
	}
	r.writeExtra(w)
	if r.Guarded && len(r.AgentRequests) > 0 {
		var sum, mx int
		for _, n := range r.AgentRequests {
			sum += n
			mx = max(mx, n)
		}
		fmt.Fprintf(w, "agent API requests per node:    mean %.1f, max %d over %s\n",
			float64(sum)/float64(len(r.AgentRequests)), mx, r.End.Sub(r.Start).Round(time.Second))
	}
}

// Report renders the run's HTML report content.
func (r *Result) Report(title string) report.Report {
	rel := func(t time.Time) float64 { return t.Sub(r.Start).Seconds() }
	rep := report.Report{Title: title, Generated: time.Now()}
	mode := "unprotected (no fanout)"
	if r.Guarded {
		mode = "guarded by fanout"
	}
	if r.Mode != "" {
		mode = "fanout " + r.Mode
	}
	rep.Summary = append(rep.Summary,
		report.Row{Label: "fleet", Value: fmt.Sprintf("%d simulated nodes, %d seeded pods, %s", r.Nodes, r.SeedPods, mode)},
		report.Row{Label: "incident", Value: fmt.Sprintf("%s rolled out at t=%.0fs, %d cluster-wide LIST loops per pod", r.TelemetryID, rel(r.Onset), r.TelemetryWorkers)},
	)
	for _, p := range r.Phases() {
		rep.Summary = append(rep.Summary, report.Row{Label: "unrelated GET, " + p.Name, Value: p.Probe.String()})
	}
	if r.Guarded {
		v := "no trip"
		if d, ok := r.TripAfterOnset(); ok {
			v = d.Round(time.Millisecond).String()
		}
		rep.Summary = append(rep.Summary, report.Row{Label: "onset → trip", Value: v})
		v = "NOT on every node"
		if d, ok := r.EnforcedEverywhere(); ok {
			v = d.Round(time.Millisecond).String() + r.lateStartsNote()
		} else if r.Mode == "dry-run" {
			v = "not enforced (dry-run)"
		}
		rep.Summary = append(rep.Summary, report.Row{Label: "trip → enforced on every node", Value: v},
			report.Row{Label: "system workloads acted on", Value: fmt.Sprint(len(r.Touched()))})
		if !r.RolledBack.IsZero() {
			rep.Summary = append(rep.Summary, report.Row{Label: "telemetry rolled back to light GETs", Value: fmt.Sprintf("t=%.0fs", rel(r.RolledBack))})
		}
		if !r.ReleaseAsked.IsZero() {
			rep.Summary = append(rep.Summary, report.Row{Label: "operator release (fanoutctl release)", Value: fmt.Sprintf("t=%.0fs: %s", rel(r.ReleaseAsked), r.ReleaseOutput)})
		}
		if rl, ok := r.Release(); ok && len(rl.Readmitted) > 0 {
			rep.Summary = append(rep.Summary, report.Row{Label: "release ramp", Value: fmt.Sprintf("%d of %d nodes re-admitted in %d steps over %s",
				len(rl.Readmitted), r.Nodes, rl.Steps, rl.Span.Round(100*time.Millisecond))})
		}
		if rl, ok := r.Release(); ok {
			if again, ok := r.FirstEvent("trip", r.TelemetryID, rl.At); ok {
				rep.Summary = append(rep.Summary, report.Row{Label: "RE-TRIPPED after the release", Value: fmt.Sprintf("t=%.1fs: %s", rel(again.At), again.Detail)})
			}
		}
	}
	if r.Guarded && len(r.AgentRequests) > 0 {
		nodes := make([]string, 0, len(r.AgentRequests))
		for n := range r.AgentRequests {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		var parts []string
		for _, n := range nodes {
			parts = append(parts, fmt.Sprintf("%s: %d", n, r.AgentRequests[n]))
		}
		rep.Summary = append(rep.Summary, report.Row{Label: "agent API requests per node (whole run)", Value: strings.Join(parts, ", ")})
	}

	system := map[string]bool{}
	for _, id := range r.System {
		system[id] = true
	}
	marks := []report.Mark{{X: rel(r.Onset), Label: "onset", Kind: "onset"}}
	for _, e := range r.Events {
		switch e.Kind {
		case "trip", "release", "alert":
			label := e.Kind + " " + e.Workload
			switch {
			case e.Kind == "alert" && system[e.Workload]:
				label = "alert " + e.Workload + " (protected: reported only)"
			case e.Kind == "trip" && strings.HasPrefix(e.Detail, "dry-run"):
				label += " (dry-run: not enforced)"
			case strings.HasPrefix(e.Detail, "dry-run"):
				label += " (dry-run)"
			}
			marks = append(marks, report.Mark{X: rel(e.At), Label: label, Kind: e.Kind})
		}
	}
	if d, ok := r.EnforcedEverywhere(); ok {
		trip, _ := r.FirstEvent("trip", r.TelemetryID, r.Onset)
		marks = append(marks, report.Mark{X: rel(trip.At.Add(d)), Label: "enforced on every node", Kind: "enforced"})
	}
	if !r.RolledBack.IsZero() {
		marks = append(marks, report.Mark{X: rel(r.RolledBack), Label: "rollback to light GETs", Kind: "info"})
	}
	if rl, ok := r.Release(); ok {
		// One line per node; a label per ramp step (re-admissions more than StepGap apart), so every step is named.
		step := 0
		for i, e := range rl.Readmitted {
			label := ""
			if i == 0 || e.At.Sub(rl.Readmitted[i-1].At) > StepGap {
				step++
				n := 1
				for j := i + 1; j < len(rl.Readmitted) && rl.Readmitted[j].At.Sub(rl.Readmitted[j-1].At) <= StepGap; j++ {
					n++
				}
				label = fmt.Sprintf("ramp step %d/%d: +%d node", step, rl.Steps, n)
				if n > 1 {
					label += "s"
				}
			}
			marks = append(marks, report.Mark{X: rel(e.At), Label: label, Kind: "release"})
		}
	}

	rates := report.Chart{Title: "API calls per second by workload (fleet-wide, as the pods counted them)", YLabel: "calls/s", Marks: marks,
		XMin: 0, XMax: rel(r.End)}
	denied := report.Chart{Title: "API calls refused or failed per second (blocked by fanout, or the API server gave up)", YLabel: "calls/s", Marks: marks,
		XMin: 0, XMax: rel(r.End)}
	for _, id := range append(append([]string(nil), r.System...), r.TelemetryID) {
		ok := report.Series{Name: id}
		bad := report.Series{Name: id}
		for _, p := range r.Recorder.Series(id) {
			x := float64(p.Sec) - float64(r.Start.UnixNano())/1e9 + 0.5
			if x < 0 || x > rel(r.End) {
				continue
			}
			ok.Points = append(ok.Points, report.Point{X: x, Y: float64(p.OK)})
			bad.Points = append(bad.Points, report.Point{X: x, Y: float64(p.Err + p.Denied)})
		}
		rates.Series = append(rates.Series, ok)
		denied.Series = append(denied.Series, bad)
	}
	lat := report.Chart{Title: "API server latency for an unrelated client (GET of one ConfigMap, 1 s windows)", YLabel: "ms", Marks: marks,
		XMin: 0, XMax: rel(r.End)}
	p50 := report.Series{Name: "p50", Color: "#1f77b4"}
	p99 := report.Series{Name: "p99", Color: "#d62728"}
	for _, w := range latency.Windows(r.Probe, time.Second) {
		x := rel(w.Start) + 0.5
		p50.Points = append(p50.Points, report.Point{X: x, Y: ms(w.Stats.P50)})
		p99.Points = append(p99.Points, report.Point{X: x, Y: ms(w.Stats.P99)})
	}
	lat.Series = []report.Series{p50, p99}
	rep.Summary = append(rep.Summary, r.extraRows()...)
	rep.Charts = append([]report.Chart{rates, denied, lat}, r.extraCharts(marks)...)
	return rep
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Labeled is one run of a multi-run report ("armed", "dry-run", "unprotected").
type Labeled struct {
	Label  string
	Result *Result
}

// CombinedReport puts several runs on one page side by side: one summary column per run, and each chart of every
// run in one row on shared axes, so "dry-run" and "armed" compare at a glance.
func CombinedReport(title string, runs ...Labeled) report.Report {
	out := report.Report{Title: title, Generated: time.Now()}
	if len(runs) == 0 {
		return out
	}
	out.Intro = intro(runs)
	rowIndex := map[string]int{}
	for i, run := range runs {
		out.Columns = append(out.Columns, run.Label)
		r := run.Result.Report(run.Label)
		for _, row := range r.Summary {
			k, ok := rowIndex[row.Label]
			if !ok {
				k = len(out.Summary)
				rowIndex[row.Label] = k
				out.Summary = append(out.Summary, report.Row{Label: row.Label, Values: make([]string, len(runs))})
			}
			out.Summary[k].Values[i] = row.Value
		}
		for j, c := range r.Charts {
			if j == len(out.Panels) {
				out.Panels = append(out.Panels, report.Panel{Title: c.Title, YLabel: c.YLabel, Charts: make([]report.Chart, len(runs))})
			}
			c.Title = run.Label + ": " + c.Title
			out.Panels[j].Charts[i] = c
		}
	}
	for i := range out.Summary {
		for j, v := range out.Summary[i].Values {
			if v == "" {
				out.Summary[i].Values[j] = "-"
			}
		}
	}
	res := runs[0].Result
	if len(res.System) > 0 {
		out.Notes = append(out.Notes, fmt.Sprintf("Alerts on %s: these system DaemonSets are protected (--killswitch.protected). "+
			"When the API server slows down their clients retry and reconnect, so their call pattern changes on every node at "+
			"once and fanout's detector notices; for a protected workload it only alerts and never trips or blocks. That is "+
			"why they can have alert markers while \"system workloads acted on\" stays 0.", strings.Join(res.System, " and ")))
	}
	return out
}

// intro is the "what you are looking at" paragraph of a combined report.
func intro(runs []Labeled) []string {
	r := runs[0].Result
	var names []string
	for _, run := range runs {
		names = append(names, run.Label)
	}
	return []string{fmt.Sprintf("What you are looking at: the same incident replayed %d times on this machine (%s, left to right), "+
		"each on a real kube-apiserver with %d simulated nodes (real cgroups, one real fanout-agent per node) and %d seeded pods. "+
		"At the orange onset line the DaemonSet %s rolls out and each of its pods starts %d cluster-wide LIST loops. "+
		"In dry-run fanout decides and audits but blocks nothing, so the incident runs its course; armed, it trips the "+
		"DaemonSet (red) and every node blocks it in the kernel (purple). Later the DaemonSet is rolled back to light GETs "+
		"and released by hand, and the nodes let it back in ramp steps (green). The first row is each workload's successful "+
		"API calls per second, the second its refused or failed calls, the third the latency an unrelated client sees: "+
		"the number that says whether the API server is healthy.",
		len(runs), strings.Join(names, ", "), r.Nodes, r.SeedPods, r.TelemetryID, r.TelemetryWorkers)}
}

// ProbeStats summarises the unrelated client's calls that started in [from, to).
func (r *Result) ProbeStats(from, to time.Time) (latency.Stats, error) {
	return latency.Summarize(between(r.Probe, from, to))
}
