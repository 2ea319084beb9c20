package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Report is the content of the page: an introduction ("what you are looking at"), a summary table, notes, then
// panels of charts. Runs compared on one page are Columns: each summary row has a value per column and each panel a
// chart per column, drawn side by side on shared axes. Adding a time series is appending a Series to a chart; adding
// a chart is appending a Panel; adding a kind of marker is a Mark with a new Kind plus its MarkKind legend entry.
type Report struct {
	Title     string
	Generated time.Time
	// Intro paragraphs open the page: what the reader is looking at.
	Intro []string
	// Columns name the runs shown side by side ("dry-run", "armed"); none means one column.
	Columns []string
	// Summary rows shown as a table above the charts.
	Summary []Row
	// Notes are free-text paragraphs under the summary.
	Notes []string
	// Panels are rows of charts, one chart per column.
	Panels []Panel
	// Charts are single charts, each a full-width panel of its own (reports with one run).
	Charts []Chart
	// MarkKinds extends or overrides the marker legend (DefaultMarkKinds); only kinds used on the page are shown.
	MarkKinds []MarkKind
}

// Row is one summary line: Value for a one-column report, else Values (one per column).
type Row struct {
	Label, Value string
	Values       []string
}

// Panel is one row of charts sharing a title, a Y label and both axes' scales: Charts[i] belongs to Columns[i].
type Panel struct {
	Title, YLabel string
	// Note is a sentence under the title, e.g. what a series means.
	Note   string
	Charts []Chart
}

// MarkKind is one kind of vertical marker: its colour and what it means, for the legend.
type MarkKind struct {
	Kind, Color, Meaning string
}

// DefaultMarkKinds are the marker kinds the e2e reports use.
var DefaultMarkKinds = []MarkKind{
	{"onset", "#ff7f0e", "onset: the offending workload starts"},
	{"alert", "#b8860b", "alert: fanout noticed a surge and only reports it (protected workloads, or below the trip threshold)"},
	{"trip", "#d62728", "trip: fanout decides to cut the workload off (in dry-run: decided, not enforced)"},
	{"enforced", "#9467bd", "enforced: every node blocks the workload"},
	{"release", "#2ca02c", "release: the workload is let back; each ramp step re-admits some nodes"},
	{"info", "#7f7f7f", "operator action (rollback, manual release)"},
}

// Chart is a line chart over a shared time axis (X in seconds since the run started).
type Chart struct {
	Title  string
	YLabel string
	Series []Series
	Marks  []Mark
	// YMin/YMax fix the Y range when YMax > YMin; otherwise 0 up to a robust top of the data: a short spike far above
	// the rest is clipped (drawn to the top edge and named in a note) instead of flattening every other line.
	YMin, YMax float64
	// XMin/XMax fix the X range when XMax > XMin (charts of one run share a time axis); otherwise the data's.
	XMin, XMax float64
}

// Series is one named line.
type Series struct {
	Name   string
	Points []Point
	// Color is a CSS colour; a palette colour when empty.
	Color string
	// Dashed draws the line dashed (e.g. a dry-run phase or a threshold).
	Dashed bool
}

// Point is one sample.
type Point struct{ X, Y float64 }

// Mark is a vertical line at X with a label, e.g. "trip DaemonSet/monitoring/telemetry".
type Mark struct {
	X     float64
	Label string
	// Kind picks the colour and legend entry (DefaultMarkKinds or Report.MarkKinds); unknown kinds draw as info.
	Kind string
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// Write renders r as a complete HTML document.
func Write(w io.Writer, r Report) error {
	if r.Generated.IsZero() {
		r.Generated = time.Now()
	}
	kinds := markKinds(r.MarkKinds)
	cols := max(len(r.Columns), 1)
	panels := append([]Panel(nil), r.Panels...)
	for _, c := range r.Charts {
		panels = append(panels, Panel{Title: c.Title, YLabel: c.YLabel, Charts: []Chart{c}})
	}
	used := map[string]bool{}
	var out []svgPanel
	for i, p := range panels {
		charts := p.Charts
		if len(charts) == 0 {
			continue
		}
		xmin, xmax, ymin, ymax, clipAt := sharedScale(charts)
		w := pageWidth
		if len(charts) > 1 {
			w = (pageWidth - float64(len(charts)-1)*gap) / float64(len(charts))
		}
		sp := svgPanel{Title: p.Title, Note: p.Note, Width: w}
		top := 0.0 // first pass: the deepest label lanes of the row, so all its plots start at the same height
		for _, c := range charts {
			c.XMin, c.XMax, c.YMin, c.YMax = xmin, xmax, ymin, ymax
			top = math.Max(top, layout("", c, w, kinds, clipAt, 0).PlotY)
		}
		for j, c := range charts {
			if c.XMax <= c.XMin {
				c.XMin, c.XMax = xmin, xmax
			}
			if c.YMax <= c.YMin {
				c.YMin, c.YMax = ymin, ymax
			}
			if c.YLabel == "" {
				c.YLabel = p.YLabel
			}
			sc := layout(fmt.Sprintf("chart-%d-%d", i, j), c, w, kinds, clipAt, top)
			if len(r.Columns) > j && len(charts) > 1 {
				sc.Column = r.Columns[j]
			}
			for _, m := range sc.Marks {
				used[m.Kind] = true
			}
			sp.Charts = append(sp.Charts, sc)
		}
		out = append(out, sp)
	}
	var legend []MarkKind
	for _, k := range kinds {
		if used[k.Kind] {
			legend = append(legend, k)
		}
	}
	rows := make([]svgRow, 0, len(r.Summary))
	for _, row := range r.Summary {
		vals := row.Values
		if len(vals) == 0 {
			vals = []string{row.Value}
		}
		for len(vals) < cols {
			vals = append(vals, "")
		}
		rows = append(rows, svgRow{Label: row.Label, Values: vals})
	}
	if err := page.Execute(w, struct {
		Report
		Rows   []svgRow
		Panels []svgPanel
		Legend []MarkKind
		Width  float64
	}{r, rows, out, legend, pageWidth}); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

func markKinds(extra []MarkKind) []MarkKind {
	out := append([]MarkKind(nil), DefaultMarkKinds...)
	for _, e := range extra {
		replaced := false
		for i := range out {
			if out[i].Kind == e.Kind {
				out[i], replaced = e, true
			}
		}
		if !replaced {
			out = append(out, e)
		}
	}
	return out
}

// Geometry, in CSS pixels / SVG user units.
const (
	pageWidth                = 1360.0
	gap                      = 16.0
	plotHeight               = 240.0
	padLeft, padRight, padBo = 62.0, 16.0, 34.0
	laneHeight               = 14.0
	charWidth                = 6.3 // of the 11 px label font, generously
)

type svgRow struct {
	Label  string
	Values []string
}

type svgPanel struct {
	Title, Note string
	Width       float64
	Charts      []svgChart
}

type svgChart struct {
	ID, Title, YLabel, Column string
	Width, Height             float64
	PlotX, PlotY              float64
	PlotW, PlotH              float64
	XTicks, YTicks            []tick
	Lines                     []svgLine
	Marks                     []svgMark
	Legend                    []legendItem
	Clipped                   []string
	Empty                     bool
}

type tick struct {
	Pos   float64
	Label string
}

type svgLine struct {
	Name, Color, Points string
	Dashed              bool
}

type svgMark struct {
	X, LabelX, LabelY float64
	Anchor            string
	Label             string
	Color, Kind       string
}

type legendItem struct {
	Name, Color string
	Dashed      bool
}

// sharedScale is the X range and robust Y range over a panel's charts, so side-by-side charts compare at a glance.
// clipAt is the Y above which points are clipped (+Inf: none).
func sharedScale(charts []Chart) (xmin, xmax, ymin, ymax, clipAt float64) {
	xmin, xmax = math.Inf(1), math.Inf(-1)
	var ys []float64
	for _, c := range charts {
		if c.XMax > c.XMin {
			xmin, xmax = math.Min(xmin, c.XMin), math.Max(xmax, c.XMax)
		}
		for _, se := range c.Series {
			for _, p := range se.Points {
				if finite(p.X) && finite(p.Y) {
					xmin, xmax = math.Min(xmin, p.X), math.Max(xmax, p.X)
					ys = append(ys, p.Y)
				}
			}
		}
		for _, m := range c.Marks {
			if finite(m.X) {
				xmin, xmax = math.Min(xmin, m.X), math.Max(xmax, m.X)
			}
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax = 0, 1
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	top, clipped := robustTop(ys)
	clipAt = math.Inf(1)
	if clipped {
		clipAt = top
	}
	return xmin, xmax, 0, top, clipAt
}

// robustTop is the Y axis top for values ys: the maximum with 8% headroom, unless the maximum is a short spike
// (over 2.5x the 97th percentile): then 1.3x the 97th percentile, and clipped is true.
func robustTop(ys []float64) (top float64, clipped bool) {
	if len(ys) == 0 {
		return 1, false
	}
	s := append([]float64(nil), ys...)
	sort.Float64s(s)
	mx := s[len(s)-1]
	if mx <= 0 {
		return 1, false
	}
	q := s[int(math.Floor(0.97*float64(len(s)-1)))]
	if q > 0 && mx > 2.5*q {
		return q * 1.3, true
	}
	return mx * 1.08, false
}

// layout places one chart of width w; its plot starts at least top units down (so charts side by side align).
func layout(id string, c Chart, w float64, kinds []MarkKind, clipAt, top float64) svgChart {
	s := svgChart{ID: id, Title: c.Title, YLabel: c.YLabel, Width: w, PlotX: padLeft, PlotW: w - padLeft - padRight}
	xmin, xmax, ymin, ymax := c.XMin, c.XMax, c.YMin, c.YMax
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if ymax <= ymin {
		ymax = ymin + 1
	}
	any := false
	for _, se := range c.Series {
		any = any || len(se.Points) > 0
	}
	s.Empty = !any
	xs := func(x float64) float64 {
		x = math.Max(xmin, math.Min(xmax, x))
		return s.PlotX + (x-xmin)/(xmax-xmin)*s.PlotW
	}

	// Marker labels go in lanes above the plot: a label takes the first lane where it overlaps no other, reads to
	// the right of its line, or to the left when it would run past the right edge. Nothing overlaps, nothing is cut.
	colors := map[string]string{}
	for _, k := range kinds {
		colors[k.Kind] = k.Color
	}
	type placed struct{ from, to float64 }
	var lanes [][]placed
	marks := append([]Mark(nil), c.Marks...)
	sort.SliceStable(marks, func(a, b int) bool { return marks[a].X < marks[b].X })
	for _, m := range marks {
		if !finite(m.X) {
			continue
		}
		color, ok := colors[m.Kind]
		if !ok {
			color, m.Kind = colors["info"], "info"
		}
		x := xs(m.X)
		sm := svgMark{X: x, Label: m.Label, Color: color, Kind: m.Kind, Anchor: "start", LabelX: x + 3}
		if m.Label != "" {
			tw := float64(len([]rune(m.Label)))*charWidth + 4
			from, to := x+3, x+3+tw
			if to > w-2 {
				from, to = x-3-tw, x-3
				sm.Anchor, sm.LabelX = "end", x-3
			}
			if from < 2 { // wider than either side: start at the left edge
				from, to = 2, 2+tw
				sm.Anchor, sm.LabelX = "start", 2
			}
			lane := 0
			for ; lane < len(lanes); lane++ {
				free := true
				for _, p := range lanes[lane] {
					if from < p.to+6 && p.from < to+6 {
						free = false
						break
					}
				}
				if free {
					break
				}
			}
			if lane == len(lanes) {
				lanes = append(lanes, nil)
			}
			lanes[lane] = append(lanes[lane], placed{from, to})
			sm.LabelY = float64(lane+1)*laneHeight - 3
		}
		s.Marks = append(s.Marks, sm)
	}
	s.PlotY = math.Max(float64(len(lanes))*laneHeight+8, top)
	s.PlotH = plotHeight
	s.Height = s.PlotY + s.PlotH + padBo
	ys := func(y float64) float64 {
		y = math.Max(ymin, math.Min(ymax, y))
		return s.PlotY + s.PlotH - (y-ymin)/(ymax-ymin)*s.PlotH
	}

	for _, v := range niceTicks(xmin, xmax, int(s.PlotW/80)) {
		s.XTicks = append(s.XTicks, tick{Pos: xs(v), Label: fmtNum(v) + "s"})
	}
	for _, v := range niceTicks(ymin, ymax, 6) {
		s.YTicks = append(s.YTicks, tick{Pos: ys(v), Label: fmtNum(v)})
	}
	for j, se := range c.Series {
		color := se.Color
		if color == "" {
			color = palette[j%len(palette)]
		}
		var b strings.Builder
		peak, peakX := math.Inf(-1), 0.0
		for _, p := range se.Points {
			if !finite(p.X) || !finite(p.Y) {
				continue
			}
			if p.Y > peak {
				peak, peakX = p.Y, p.X
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", xs(p.X), ys(p.Y))
		}
		if peak > ymax || peak > clipAt {
			s.Clipped = append(s.Clipped, fmt.Sprintf("%s peaks at %s at t=%ss (off the top of this scale)", se.Name, fmtNum(peak), fmtNum(math.Round(peakX))))
		}
		s.Lines = append(s.Lines, svgLine{Name: se.Name, Color: color, Points: strings.TrimSpace(b.String()), Dashed: se.Dashed})
		s.Legend = append(s.Legend, legendItem{Name: se.Name, Color: color, Dashed: se.Dashed})
	}
	for i := range s.Marks {
		s.Marks[i].LabelY = math.Min(s.Marks[i].LabelY, s.PlotY-4)
	}
	return s
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// niceTicks returns about n round values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	span := hi - lo
	if span <= 0 || n < 1 {
		return []float64{lo}
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9 && len(out) < 100; v += step {
		out = append(out, v)
	}
	return out
}

func fmtNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	case a == math.Trunc(a):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

var funcs = template.FuncMap{
	"add":  func(a, b float64) float64 { return a + b },
	"half": func(a float64) float64 { return a / 2 },
}

var page = template.Must(template.New("page").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 20px auto; max-width: {{.Width}}px; padding: 0 12px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin: 26px 0 4px; } p.intro { max-width: 1000px; line-height: 1.45; }
table.summary { border-collapse: collapse; } table.summary td, table.summary th { border-bottom: 1px solid #ddd; padding: 4px 14px 4px 0; vertical-align: top; text-align: left; }
table.summary td:first-child { color: #555; }
.row { display: flex; gap: {{printf "%.0f" 16.0}}px; } .cell { flex: 0 0 auto; }
.column { font-weight: 600; font-size: 14px; margin: 6px 0 2px; } .note { color: #555; font-size: 13px; margin: 0 0 6px; }
.clipped { color: #a0522d; font-size: 12px; margin: 2px 0; }
svg { display: block; background: #fcfcfc; border: 1px solid #e3e3e3; }
svg text { font-size: 11px; fill: #444; } .grid { stroke: #e8e8e8; } .axis { stroke: #888; }
.legend span, .marklegend span { display: inline-block; margin-right: 14px; font-size: 12px; } .legend i, .marklegend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 5px; }
.marklegend { margin: 10px 0; padding: 6px 8px; border: 1px solid #eee; background: #fafafa; } .marklegend i { border-left: 2px dashed; height: 12px; width: 0; background: none !important; margin-right: 6px; }
.empty { fill: #999; font-size: 14px; } footer { margin-top: 32px; color: #888; font-size: 12px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Intro}}<p class="intro">{{.}}</p>{{end}}
{{if .Rows}}<table class="summary">{{if .Columns}}<tr><th></th>{{range .Columns}}<th>{{.}}</th>{{end}}</tr>{{end}}{{range .Rows}}<tr><td>{{.Label}}</td>{{range .Values}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>{{end}}
{{range .Notes}}<p>{{.}}</p>{{end}}
{{if .Legend}}<div class="marklegend"><b>Vertical markers:</b> {{range .Legend}}<span><i style="border-color: {{.Color}}"></i>{{.Meaning}}</span>{{end}}</div>{{end}}
{{range .Panels}}
<section class="panel">
<h2>{{.Title}}</h2>
{{if .Note}}<p class="note">{{.Note}}</p>{{end}}
<div class="row">
{{range .Charts}}
<div class="cell chart" id="{{.ID}}">
{{if .Column}}<div class="column">{{.Column}}</div>{{end}}
<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{{printf "%.0f" .Width}}" height="{{printf "%.0f" .Height}}" viewBox="0 0 {{printf "%.0f" .Width}} {{printf "%.0f" .Height}}" role="img" aria-label="{{.Title}}">
{{- $c := .}}
{{- range .YTicks}}
<line class="grid" x1="{{$c.PlotX}}" x2="{{printf "%.1f" (add $c.PlotX $c.PlotW)}}" y1="{{printf "%.1f" .Pos}}" y2="{{printf "%.1f" .Pos}}"/><text x="{{printf "%.1f" (add $c.PlotX -6)}}" y="{{printf "%.1f" (add .Pos 4)}}" text-anchor="end">{{.Label}}</text>
{{- end}}
{{- range .XTicks}}
<line class="grid" x1="{{printf "%.1f" .Pos}}" x2="{{printf "%.1f" .Pos}}" y1="{{$c.PlotY}}" y2="{{printf "%.1f" (add $c.PlotY $c.PlotH)}}"/><text x="{{printf "%.1f" .Pos}}" y="{{printf "%.1f" (add (add $c.PlotY $c.PlotH) 16)}}" text-anchor="middle">{{.Label}}</text>
{{- end}}
<line class="axis" x1="{{$c.PlotX}}" x2="{{$c.PlotX}}" y1="{{$c.PlotY}}" y2="{{printf "%.1f" (add $c.PlotY $c.PlotH)}}"/>
<line class="axis" x1="{{$c.PlotX}}" x2="{{printf "%.1f" (add $c.PlotX $c.PlotW)}}" y1="{{printf "%.1f" (add $c.PlotY $c.PlotH)}}" y2="{{printf "%.1f" (add $c.PlotY $c.PlotH)}}"/>
<text x="14" y="{{printf "%.1f" (add $c.PlotY (half $c.PlotH))}}" transform="rotate(-90 14 {{printf "%.1f" (add $c.PlotY (half $c.PlotH))}})" text-anchor="middle">{{.YLabel}}</text>
{{- if .Empty}}<text class="empty" x="{{printf "%.1f" (add $c.PlotX (half $c.PlotW))}}" y="{{printf "%.1f" (add $c.PlotY (half $c.PlotH))}}" text-anchor="middle">no data</text>{{end}}
{{- range .Lines}}
<polyline class="series" data-series="{{.Name}}" fill="none" stroke="{{.Color}}" stroke-width="2"{{if .Dashed}} stroke-dasharray="6 4"{{end}} points="{{.Points}}"><title>{{.Name}}</title></polyline>
{{- end}}
{{- range .Marks}}
<line class="mark mark-{{.Kind}}" x1="{{printf "%.1f" .X}}" x2="{{printf "%.1f" .X}}" y1="{{$c.PlotY}}" y2="{{printf "%.1f" (add $c.PlotY $c.PlotH)}}" stroke="{{.Color}}" stroke-width="1.5" stroke-dasharray="4 3"/>{{if .Label}}<text class="mark-label" x="{{printf "%.1f" .LabelX}}" y="{{printf "%.1f" .LabelY}}" text-anchor="{{.Anchor}}" style="fill: {{.Color}}">{{.Label}}</text>{{end}}
{{- end}}
</svg>
{{range .Clipped}}<p class="clipped">{{.}}</p>{{end}}
<div class="legend">{{range .Legend}}<span><i style="background: {{.Color}}"></i>{{.Name}}{{if .Dashed}} (dashed){{end}}</span>{{end}}</div>
</div>
{{end}}
</div>
</section>
{{end}}
<footer>generated {{.Generated.UTC.Format "2006-01-02 15:04:05 UTC"}} by fanout e2e</footer>
</body>
</html>
`))
