package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func sampleReport() Report {
	var sys, bad, p50, p99 []Point
	for x := 0.0; x <= 120; x++ {
		sys = append(sys, Point{X: x, Y: 40 + float64(int(x)%3)})
		y := 0.0
		if x >= 30 && x < 62 {
			y = 900
		} else if x >= 90 {
			y = (x - 90) * 10
		}
		bad = append(bad, Point{X: x, Y: y})
		p50 = append(p50, Point{X: x, Y: 4})
		p99 = append(p99, Point{X: x, Y: 20 + y/10})
	}
	dry := []Mark{{X: 20, Label: "onset", Kind: "onset"}, {X: 21, Label: "alert DaemonSet/kube-system/kube-proxy (protected: reported only)", Kind: "alert"},
		{X: 22, Label: "trip DaemonSet/monitoring/telemetry (dry-run: not enforced)", Kind: "trip"}, {X: 100, Label: "rollback to light GETs", Kind: "info"}}
	armed := []Mark{{X: 20, Label: "onset", Kind: "onset"}, {X: 22, Label: "trip DaemonSet/monitoring/telemetry", Kind: "trip"},
		{X: 22.3, Label: "enforced on every node", Kind: "enforced"}, {X: 22.5, Label: "alert DaemonSet/kube-system/kube-proxy (protected: reported only)", Kind: "alert"},
		{X: 100, Label: "rollback to light GETs", Kind: "info"}, {X: 106, Label: "release DaemonSet/monitoring/telemetry", Kind: "release"},
		{X: 107, Label: "ramp step 1/3: +2 nodes", Kind: "release"}, {X: 113, Label: "ramp step 2/3: +1 node", Kind: "release"},
		{X: 119.5, Label: "ramp step 3/3: +1 node", Kind: "release"}}
	denied := []Point{}
	for x := 0.0; x <= 120; x++ {
		y := 0.0
		if x >= 22 && x < 100 {
			y = 3
		}
		denied = append(denied, Point{X: x, Y: y})
	}
	return Report{
		Title:     "fanout e2e <incident> replay",
		Generated: time.Unix(1800000000, 0),
		Intro:     []string{"What you are looking at: the same incident twice, dry-run left, armed right."},
		Columns:   []string{"dry-run", "armed"},
		Summary: []Row{{Label: "onset → trip", Values: []string{"2.1 s", "2.0 s"}},
			{Label: "trip → enforced on every node", Values: []string{"not enforced (dry-run)", "0.31 s"}}},
		Notes: []string{"alerts on protected DaemonSets are reported only"},
		Panels: []Panel{
			{Title: "API requests per second by workload", YLabel: "requests/s", Charts: []Chart{
				{Series: []Series{{Name: "DaemonSet/kube-system/kube-proxy", Points: sys}, {Name: "DaemonSet/monitoring/telemetry<script>", Points: bad}}, Marks: dry},
				{Series: []Series{{Name: "DaemonSet/kube-system/kube-proxy", Points: sys}, {Name: "DaemonSet/monitoring/telemetry<script>", Points: bad}}, Marks: armed},
			}},
			{Title: "refused calls per second", YLabel: "calls/s", Charts: []Chart{
				{Series: []Series{{Name: "telemetry", Points: denied}}, Marks: dry},
				{Series: []Series{{Name: "telemetry", Points: denied}}, Marks: armed},
			}},
			{Title: "Unrelated client GET latency", YLabel: "ms", Charts: []Chart{
				{Series: []Series{{Name: "p50", Points: p50}, {Name: "p99", Points: p99, Dashed: true}}, Marks: dry},
				{Series: []Series{{Name: "p50", Points: p50}, {Name: "p99", Points: p99, Dashed: true}}, Marks: armed},
			}},
		},
		Charts: []Chart{{Title: "Empty chart", YLabel: "n"}},
	}
}

func TestWriteStructure(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for what, want := range map[string]int{
		"<svg ":                     7,
		`<polyline class="series"`:  10,
		`class="mark mark-trip"`:    6,
		`class="mark mark-release"`: 12,
		`class="mark mark-alert"`:   6,
		">no data</text>":           1,
		"ramp step 3/3":             3,
		"<th>armed</th>":            1,
		"What you are looking at":   1,
		"Vertical markers:":         1,
	} {
		if got := strings.Count(html, what); got != want {
			t.Errorf("%q appears %d times, want %d", what, got, want)
		}
	}
	if strings.Contains(html, "<script>") || !strings.Contains(html, "telemetry&lt;script&gt;") {
		t.Errorf("series names must be escaped")
	}
	if strings.Contains(html, "NaN") || strings.Contains(html, "Inf") || strings.Contains(html, "ZgotmplZ") {
		t.Errorf("bad values in output")
	}
	if strings.Contains(html, "http://") && strings.Count(html, "http://") != 7 { // only the svg xmlns
		t.Errorf("page must not reference external resources")
	}
	// Every polyline has all its points (121 per series).
	re := regexp.MustCompile(`points="([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(html, -1) {
		if n := len(strings.Fields(m[1])); n != 121 {
			t.Errorf("polyline with %d points, want 121", n)
		}
	}
}

// TestMarkLabelsNeverOverlapOrCut: crowded marks (the armed run's trip, enforcement and alerts within a second, a
// label at the right edge) get lanes of their own and stay inside the chart.
func TestMarkLabelsNeverOverlapOrCut(t *testing.T) {
	c := Chart{XMin: 0, XMax: 100, YMin: 0, YMax: 10, Series: []Series{{Name: "s", Points: []Point{{0, 1}, {100, 2}}}}}
	for i, x := range []float64{30, 30.2, 30.4, 31, 31.5, 60, 99.5, 100} {
		c.Marks = append(c.Marks, Mark{X: x, Label: strings.Repeat("enforced on every node ", 1+i%2), Kind: []string{"trip", "enforced", "alert", "release"}[i%4]})
	}
	for _, w := range []float64{pageWidth, 672} {
		s := layout("t", c, w, DefaultMarkKinds, math.Inf(1), 0)
		type box struct{ from, to, y float64 }
		var boxes []box
		for _, m := range s.Marks {
			tw := float64(len([]rune(m.Label))) * charWidth
			from := m.LabelX
			if m.Anchor == "end" {
				from -= tw
			}
			if from < 0 || from+tw > w {
				t.Errorf("width %v: label %q at %.0f..%.0f is cut", w, m.Label, from, from+tw)
			}
			if m.LabelY >= s.PlotY {
				t.Errorf("label %q drawn inside the plot (y %.0f, plot from %.0f)", m.Label, m.LabelY, s.PlotY)
			}
			for _, b := range boxes {
				if b.y == m.LabelY && from < b.to && b.from < from+tw {
					t.Errorf("width %v: label %q overlaps another at y=%.0f", w, m.Label, m.LabelY)
				}
			}
			boxes = append(boxes, box{from, from + tw, m.LabelY})
		}
	}
}

// TestRobustScale: a one-second spike does not flatten the rest; it is clipped and named.
func TestRobustScale(t *testing.T) {
	var pts []Point
	for x := 0.0; x < 120; x++ {
		y := 40.0
		if x == 50 {
			y = 5000
		}
		pts = append(pts, Point{x, y})
	}
	var buf bytes.Buffer
	if err := Write(&buf, Report{Charts: []Chart{{Title: "rates", Series: []Series{{Name: "web ok", Points: pts}}}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "web ok peaks at 5000 at t=50s") {
		t.Fatalf("spike not named:\n%s", buf.String())
	}
	if top, clipped := robustTop([]float64{1, 2, 3, 4, 5}); clipped || top < 5 {
		t.Fatalf("no spike: top %v clipped %v", top, clipped)
	}
}

func TestNiceTicks(t *testing.T) {
	got := niceTicks(0, 120, 10)
	if len(got) != 7 || got[1] != 20 || got[6] != 120 {
		t.Fatalf("ticks %v", got)
	}
	got = niceTicks(0, 0.9, 6)
	if len(got) != 5 || got[4] < 0.799 || got[4] > 0.801 {
		t.Fatalf("ticks %v", got)
	}
}

// TestRendersInHeadlessChromium opens the page in a real browser: the DOM it builds holds the plots, and a
// screenshot of it is not blank.
func TestRendersInHeadlessChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("FANOUT_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("chromium not installed (Debian package chromium; .ci/run installs it)")
		}
		t.Skip("chromium not installed")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	var buf bytes.Buffer
	if err := Write(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(page, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	run := func(extra ...string) []byte {
		t.Helper()
		args := append([]string{
			"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
			"--user-data-dir=" + t.TempDir(),
		}, extra...)
		args = append(args, "file://"+page)
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = dir
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
		}
		return stdout.Bytes()
	}
	dom := string(run("--dump-dom"))
	if n := strings.Count(dom, "<svg"); n != 7 {
		t.Fatalf("browser DOM has %d svg elements, want 7", n)
	}
	if n := strings.Count(dom, "<polyline"); n != 10 {
		t.Fatalf("browser DOM has %d polylines, want 10", n)
	}
	if !strings.Contains(dom, "DaemonSet/kube-system/kube-proxy") || !strings.Contains(dom, "trip") {
		t.Fatal("browser DOM lacks the legend or marks")
	}

	shot := filepath.Join(dir, "shot.png")
	if keep := os.Getenv("FANOUT_REPORT_SHOT"); keep != "" {
		shot = keep // for a person to look at
	}
	run("--screenshot="+shot, "--window-size=1420,2200", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	colors, red := countColors(img)
	if colors < 20 || red < 50 {
		t.Fatalf("screenshot looks blank: %d distinct colours, %d red-line pixels", colors, red)
	}
	t.Logf("screenshot %v: %d distinct colours, %d pixels of the red series/trip colour", img.Bounds().Size(), colors, red)
}

// countColors returns the number of distinct colours and of pixels close to the red series colour (#d62728).
func countColors(img image.Image) (int, int) {
	seen := map[[3]uint32]bool{}
	red := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 > 180 && g>>8 < 80 && bl>>8 < 80 {
				red++
			}
		}
	}
	return len(seen), red
}
