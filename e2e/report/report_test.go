package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
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
	return Report{
		Title:     "fanout e2e <incident> replay",
		Generated: time.Unix(1800000000, 0),
		Summary:   []Row{{"onset → trip", "2.1 s"}, {"trip → enforced on every node", "0.31 s"}},
		Notes:     []string{"armed run; the dry run follows"},
		Charts: []Chart{
			{
				Title: "API requests per second by workload", YLabel: "requests/s",
				Series: []Series{{Name: "DaemonSet/kube-system/kube-proxy", Points: sys}, {Name: "DaemonSet/monitoring/telemetry<script>", Points: bad}},
				Marks:  []Mark{{X: 30, Label: "onset", Kind: "onset"}, {X: 32, Label: "trip", Kind: "trip"}, {X: 32.3, Label: "enforced", Kind: "enforced"}, {X: 90, Label: "release", Kind: "release"}},
			},
			{
				Title: "Unrelated client GET latency", YLabel: "ms",
				Series: []Series{{Name: "p50", Points: p50}, {Name: "p99", Points: p99, Dashed: true}},
				Marks:  []Mark{{X: 32, Label: "trip", Kind: "trip"}},
			},
			{Title: "Empty chart", YLabel: "n"},
		},
	}
}

func TestWriteStructure(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for what, want := range map[string]int{
		"<svg ":                     3,
		`<polyline class="series"`:  4,
		`class="mark mark-trip"`:    2,
		`class="mark mark-release"`: 1,
		">no data</text>":           1,
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
	if strings.Contains(html, "http://") && strings.Count(html, "http://") != 3 { // only the svg xmlns
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
	if n := strings.Count(dom, "<svg"); n != 3 {
		t.Fatalf("browser DOM has %d svg elements, want 3", n)
	}
	if n := strings.Count(dom, "<polyline"); n != 4 {
		t.Fatalf("browser DOM has %d polylines, want 4", n)
	}
	if !strings.Contains(dom, "DaemonSet/kube-system/kube-proxy") || !strings.Contains(dom, "trip") {
		t.Fatal("browser DOM lacks the legend or marks")
	}

	shot := filepath.Join(dir, "shot.png")
	if keep := os.Getenv("FANOUT_REPORT_SHOT"); keep != "" {
		shot = keep // for a person to look at
	}
	run("--screenshot="+shot, "--window-size=1000,1400", "--hide-scrollbars")
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
