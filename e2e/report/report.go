package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Report is the content of the page.
type Report struct {
	Title     string
	Generated time.Time
	// Summary rows (label, value) shown as a table above the charts.
	Summary []Row
	// Notes are free-text paragraphs under the summary.
	Notes  []string
	Charts []Chart
}

// Row is one summary line.
type Row struct{ Label, Value string }

// Chart is a line chart over a shared time axis (X in seconds since the run started).
type Chart struct {
	Title  string
	YLabel string
	Series []Series
	Marks  []Mark
	// YMin/YMax fix the Y range when YMax > YMin; otherwise 0..max of the data (with headroom).
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
	// Kind picks the colour: onset | trip | enforced | release | info.
	Kind string
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

var markColors = map[string]string{"onset": "#ff7f0e", "trip": "#d62728", "enforced": "#9467bd", "release": "#2ca02c", "info": "#7f7f7f"}

// Write renders r as a complete HTML document.
func Write(w io.Writer, r Report) error {
	if r.Generated.IsZero() {
		r.Generated = time.Now()
	}
	charts := make([]svgChart, 0, len(r.Charts))
	for i, c := range r.Charts {
		charts = append(charts, layout(i, c))
	}
	if err := page.Execute(w, struct {
		Report
		SVGs []svgChart
	}{r, charts}); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	return nil
}

// Geometry of a chart, in SVG user units.
const (
	width, height                      = 960.0, 340.0
	padLeft, padRight, padTop, padBott = 70.0, 20.0, 20.0, 40.0
)

type svgChart struct {
	ID, Title, YLabel string
	Width, Height     float64
	PlotX, PlotY      float64
	PlotW, PlotH      float64
	XTicks, YTicks    []tick
	Lines             []svgLine
	Marks             []svgMark
	Legend            []legendItem
	Empty             bool
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
	X, LabelY   float64
	Label       string
	Color, Kind string
}

type legendItem struct {
	Name, Color string
	Dashed      bool
}

func layout(i int, c Chart) svgChart {
	s := svgChart{
		ID: "chart-" + strconv.Itoa(i), Title: c.Title, YLabel: c.YLabel, Width: width, Height: height,
		PlotX: padLeft, PlotY: padTop, PlotW: width - padLeft - padRight, PlotH: height - padTop - padBott,
	}
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymax := math.Inf(-1)
	for _, se := range c.Series {
		for _, p := range se.Points {
			if !finite(p.X) || !finite(p.Y) {
				continue
			}
			xmin, xmax, ymax = math.Min(xmin, p.X), math.Max(xmax, p.X), math.Max(ymax, p.Y)
		}
	}
	for _, m := range c.Marks {
		if finite(m.X) {
			xmin, xmax = math.Min(xmin, m.X), math.Max(xmax, m.X)
		}
	}
	if math.IsInf(xmin, 1) {
		s.Empty = true
		xmin, xmax = 0, 1
	}
	if c.XMax > c.XMin {
		xmin, xmax = c.XMin, c.XMax
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	ymin := 0.0
	if c.YMax > c.YMin {
		ymin, ymax = c.YMin, c.YMax
	} else if math.IsInf(ymax, -1) || ymax <= 0 {
		ymax = 1
	} else {
		ymax *= 1.08
	}
	xs := func(x float64) float64 {
		x = math.Max(xmin, math.Min(xmax, x))
		return s.PlotX + (x-xmin)/(xmax-xmin)*s.PlotW
	}
	ys := func(y float64) float64 {
		y = math.Max(ymin, math.Min(ymax, y))
		return s.PlotY + s.PlotH - (y-ymin)/(ymax-ymin)*s.PlotH
	}
	for _, v := range niceTicks(xmin, xmax, 10) {
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
		for _, p := range se.Points {
			if !finite(p.X) || !finite(p.Y) {
				continue
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", xs(p.X), ys(p.Y))
		}
		s.Lines = append(s.Lines, svgLine{Name: se.Name, Color: color, Points: strings.TrimSpace(b.String()), Dashed: se.Dashed})
		s.Legend = append(s.Legend, legendItem{Name: se.Name, Color: color, Dashed: se.Dashed})
	}
	for j, m := range c.Marks {
		if !finite(m.X) {
			continue
		}
		color, ok := markColors[m.Kind]
		if !ok {
			color, m.Kind = markColors["info"], "info"
		}
		// Stagger labels so neighbouring marks stay readable.
		s.Marks = append(s.Marks, svgMark{X: xs(m.X), LabelY: s.PlotY + 12 + float64(j%4)*13, Label: m.Label, Color: color, Kind: m.Kind})
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
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1000px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table.summary { border-collapse: collapse; } table.summary td { border-bottom: 1px solid #ddd; padding: 4px 12px 4px 0; vertical-align: top; }
table.summary td:first-child { color: #555; }
svg { display: block; background: #fcfcfc; border: 1px solid #e3e3e3; }
svg text { font-size: 11px; fill: #444; } .grid { stroke: #e8e8e8; } .axis { stroke: #888; }
.legend span { display: inline-block; margin-right: 16px; font-size: 13px; } .legend i { display: inline-block; width: 18px; height: 3px; vertical-align: middle; margin-right: 5px; }
.empty { fill: #999; font-size: 14px; } footer { margin-top: 32px; color: #888; font-size: 12px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .Summary}}<table class="summary">{{range .Summary}}<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>{{end}}</table>{{end}}
{{range .Notes}}<p>{{.}}</p>{{end}}
{{range .SVGs}}
<section class="chart" id="{{.ID}}">
<h2>{{.Title}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
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
<line class="mark mark-{{.Kind}}" x1="{{printf "%.1f" .X}}" x2="{{printf "%.1f" .X}}" y1="{{$c.PlotY}}" y2="{{printf "%.1f" (add $c.PlotY $c.PlotH)}}" stroke="{{.Color}}" stroke-width="1.5" stroke-dasharray="4 3"/><text class="mark-label" x="{{printf "%.1f" (add .X 4)}}" y="{{printf "%.1f" .LabelY}}" fill="{{.Color}}">{{.Label}}</text>
{{- end}}
</svg>
<div class="legend">{{range .Legend}}<span><i style="background: {{.Color}}"></i>{{.Name}}{{if .Dashed}} (dashed){{end}}</span>{{end}}</div>
</section>
{{end}}
<footer>generated {{.Generated.UTC.Format "2006-01-02 15:04:05 UTC"}} by fanout e2e</footer>
</body>
</html>
`))
