package incident

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/e2e/report"
)

// cpuGroups in the order they are printed and plotted.
var cpuGroups = []string{CPUAPIServer, CPUEtcd, CPUTelemetry, CPUSystem, CPUMachine}

// CPUDuring is each group's mean cores over [from, to), in cpuGroups order, for groups that were sampled.
func (r *Result) CPUDuring(from, to time.Time) []CPUShare {
	var out []CPUShare
	for _, g := range cpuGroups {
		if v, ok := r.MeanCores(g, from, to); ok {
			out = append(out, CPUShare{Group: g, Cores: v})
		}
	}
	return out
}

// CPUShare is a group's mean CPU use over a window.
type CPUShare struct {
	Group string
	Cores float64
}

func cpuText(s []CPUShare) string {
	parts := make([]string, 0, len(s))
	for _, c := range s {
		parts = append(parts, fmt.Sprintf("%s %.2f", c.Group, c.Cores))
	}
	return strings.Join(parts, ", ") + " cores"
}

// AggregatorRequestsPerMinute is the aggregator's own API requests per minute over the run (audit log).
func (r *Result) AggregatorRequestsPerMinute() float64 {
	d := r.End.Sub(r.Start).Minutes()
	if d <= 0 {
		return 0
	}
	return float64(r.AggregatorRequests) / d
}

// writeExtra prints the telemetry tool, the CPU confound per phase and the aggregator's API cost.
func (r *Result) writeExtra(w io.Writer) {
	if r.TelemetryTool != "" {
		fmt.Fprintf(w, "telemetry pods ran:             %s (real kubectl from the module proxy)\n", r.TelemetryTool)
	}
	if len(r.CPU) > 0 {
		for _, p := range r.Phases() {
			fmt.Fprintf(w, "CPU, %-9s                  %s\n", p.Name+":", cpuText(r.CPUDuring(p.From, p.To)))
		}
	}
	if r.Guarded && r.AggregatorRequests > 0 {
		fmt.Fprintf(w, "aggregator API requests:        %d over %s (%.1f/min)\n", r.AggregatorRequests,
			r.End.Sub(r.Start).Round(time.Second), r.AggregatorRequestsPerMinute())
	}
}

// extraRows are the report rows of writeExtra.
func (r *Result) extraRows() []report.Row {
	var rows []report.Row
	if r.TelemetryTool != "" {
		rows = append(rows, report.Row{Label: "telemetry pods ran", Value: r.TelemetryTool + " (real kubectl from the module proxy)"})
	}
	for _, p := range r.Phases() {
		if s := r.CPUDuring(p.From, p.To); len(s) > 0 {
			rows = append(rows, report.Row{Label: "CPU, " + p.Name, Value: cpuText(s)})
		}
	}
	if r.Guarded && r.AggregatorRequests > 0 {
		rows = append(rows, report.Row{Label: "aggregator's own API requests", Value: fmt.Sprintf("%d (%.1f/min)", r.AggregatorRequests, r.AggregatorRequestsPerMinute())})
	}
	return rows
}

// extraCharts plots the CPU confound and, when the guard recorded them, the aggregator's headroom estimate and the
// API server utilization it measured (flow-control seats and fanout's own load against the estimate).
func (r *Result) extraCharts(marks []report.Mark) []report.Chart {
	rel := func(t time.Time) float64 { return t.Sub(r.Start).Seconds() }
	var out []report.Chart
	if len(r.CPU) > 0 {
		c := report.Chart{Title: "CPU by process group (cores; the heavy client competes with the API server on this machine)",
			YLabel: "cores", Marks: marks, XMin: 0, XMax: rel(r.End)}
		for _, g := range cpuGroups {
			s := report.Series{Name: g, Dashed: g == CPUMachine}
			for _, p := range r.CPU[g] {
				if x := rel(p.At) - 0.5; x >= 0 {
					s.Points = append(s.Points, report.Point{X: x, Y: p.Cores})
				}
			}
			if len(s.Points) > 0 {
				c.Series = append(c.Series, s)
			}
		}
		out = append(out, c)
	}
	util := report.Chart{Title: "API server utilization: measured by fanout (flow-control seats, latency, its load vs. the learned capacity)",
		YLabel: "ratio", Marks: marks, XMin: 0, XMax: rel(r.End)}
	est := report.Chart{Title: "fanout's learned API server capacity, requests/s (estimate over time)", YLabel: "requests/s", Marks: marks, XMin: 0, XMax: rel(r.End)}
	estB := report.Chart{Title: "fanout's learned API server capacity, response bytes/s (estimate over time)", YLabel: "bytes/s", Marks: marks, XMin: 0, XMax: rel(r.End)}
	ms := append([]MetricSeries(nil), r.Metrics...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	for _, m := range ms {
		s := report.Series{Name: m.Name}
		for _, p := range m.Points {
			// Negative values mean "this signal says nothing now" (fanout_headroom_utilization_ratio): not plotted.
			if x := rel(p.At); x >= 0 && p.Value >= 0 {
				s.Points = append(s.Points, report.Point{X: x, Y: p.Value})
			}
		}
		switch {
		case len(s.Points) == 0:
		case strings.Contains(m.Name, "utilization"):
			util.Series = append(util.Series, s)
		case strings.Contains(m.Name, "capacity") && strings.Contains(m.Name, "bytes"):
			estB.Series = append(estB.Series, s)
		case strings.Contains(m.Name, "capacity"):
			est.Series = append(est.Series, s)
		}
	}
	for _, c := range []report.Chart{util, est, estB} {
		if len(c.Series) > 0 {
			out = append(out, c)
		}
	}
	return out
}
