package apiserverstats

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const textType = "text/plain; version=0.0.4; charset=utf-8"

func readPage(t testing.TB, name string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name+".prom.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseRecorded(t testing.TB, name string) *Page {
	t.Helper()
	p, err := ParsePage(bytes.NewReader(readPage(t, name)), textType, DefaultLimits())
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return p
}

func loadMeta(t testing.TB) recordMeta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pages.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m recordMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The pages recorded from the e2e kube-apiserver carry the default APF configuration: its non-exempt levels with
// their nominal seats, no exempt level, and request durations.
func TestRecordedPageAtRest(t *testing.T) {
	p := parseRecorded(t, "rest-a")
	if p.Level(ExemptLevel) != nil {
		t.Fatal("exempt level not excluded")
	}
	for _, name := range []string{"workload-low", "workload-high", "global-default", "system", "leader-election", "node-high", "catch-all"} {
		lv := p.Level(name)
		if lv == nil || lv.NominalSeats <= 0 {
			t.Fatalf("level %s missing or without nominal seats: %+v", name, lv)
		}
	}
	total := 0.0
	for _, lv := range p.Levels {
		total += lv.NominalSeats
	}
	// kube-apiserver's default: 600 seats (400 mutating + 200 read-only in flight); exempt has none.
	if total < 100 || total > 700 {
		t.Fatalf("nominal seats %v", total)
	}
	if p.RequestDuration.Count <= 0 || len(p.RequestDuration.Bounds) < 10 {
		t.Fatalf("request duration histogram: %+v", p.RequestDuration)
	}
	if p.Skipped != 0 {
		t.Fatalf("skipped %d series of a real page", p.Skipped)
	}
	t.Logf("levels %d, nominal seats %v, series %d, requests %v", len(p.Levels), total, p.Series, p.RequestDuration.Count)
}

// Consecutive pages turn into readings: at rest few seats executing, under LIST load more and a longer latency tail.
func TestRecordedReadings(t *testing.T) {
	meta := loadMeta(t)
	t0 := time.Unix(1_700_000_000, 0)
	reading := func(phase string) Reading {
		var gap float64
		for _, ph := range meta.Phases {
			if ph.Name == phase {
				gap = ph.Gap
			}
		}
		a, b := parseRecorded(t, phase+"-a"), parseRecorded(t, phase+"-b")
		first := NewReading("r", t0, a, time.Time{}, nil)
		if first.Deltas || first.Latency.Count != 0 {
			t.Fatalf("first reading has deltas: %+v", first)
		}
		return NewReading("r", t0.Add(time.Duration(gap*float64(time.Second))), b, t0, a)
	}
	rest, load, over := reading("rest"), reading("load"), reading("overload")
	for _, r := range []Reading{rest, load, over} {
		if !r.Deltas || r.NominalSeats <= 0 || r.Latency.Count <= 0 {
			t.Fatalf("reading without deltas or limits: %+v", r)
		}
		s := r.Sample()
		if err := s.Validate(); err != nil {
			t.Fatalf("sample: %v", err)
		}
		t.Logf("%s: seats %.0f/%.0f (util %.3f) inqueue %.0f rejected %.0f, requests %.0f mean %.3fs p99 %.3fs, wait n=%.0f p99 %.3fs",
			r.Replica, r.ExecutingSeats, r.NominalSeats, r.Utilization(), r.Inqueue, r.Rejected, r.Latency.Count, r.Latency.Mean(), r.Latency.Quantile(0.99), r.Wait.Count, r.Wait.Quantile(0.99))
	}
	if !(load.ExecutingSeats > rest.ExecutingSeats) || !(over.ExecutingSeats > rest.ExecutingSeats) {
		t.Fatalf("executing seats do not rise under LIST load: rest %v load %v overload %v", rest.ExecutingSeats, load.ExecutingSeats, over.ExecutingSeats)
	}
	if !(load.Latency.Mean() > rest.Latency.Mean()) {
		t.Fatalf("mean request duration does not rise under load: rest %v load %v", rest.Latency.Mean(), load.Latency.Mean())
	}
}

func TestHistogramSubAndQuantile(t *testing.T) {
	a := Histogram{Bounds: []float64{0.1, 1, 10}, Counts: []float64{10, 20, 30}, Count: 30, Sum: 50}
	b := Histogram{Bounds: []float64{0.1, 1, 10}, Counts: []float64{10, 110, 130}, Count: 140, Sum: 200}
	d, ok := b.Sub(a)
	if !ok || d.Count != 110 || d.Counts[1] != 90 || d.Sum != 150 {
		t.Fatalf("sub: %+v %v", d, ok)
	}
	// 99th of 110 observations: rank 108.9, in (1, 10]: 1 + 9*(108.9-90)/10.
	if q := d.Quantile(0.99); q < 9 || q > 10 {
		t.Fatalf("p99 %v", q)
	}
	if _, ok := a.Sub(b); ok {
		t.Fatal("a counter going down is not a reset")
	}
	// A reset marks the reading without deltas.
	pa := &Page{Levels: []Level{{Name: "x", NominalSeats: 10, Rejected: 5}}}
	pb := &Page{Levels: []Level{{Name: "x", NominalSeats: 10, Rejected: 1}}}
	now := time.Unix(100, 0)
	if r := NewReading("r", now.Add(time.Second), pb, now, pa); r.Deltas || r.Rejected != 0 {
		t.Fatalf("reset not detected: %+v", r)
	}
}

func TestLimits(t *testing.T) {
	body := readPage(t, "load-a")
	lim := DefaultLimits()
	lim.MaxBodyBytes = int64(len(body)) - 1
	if _, err := ParsePage(bytes.NewReader(body), textType, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body limit: %v", err)
	}
	lim.MaxBodyBytes = int64(len(body))
	if _, err := ParsePage(bytes.NewReader(body), textType, lim); err != nil {
		t.Fatalf("body exactly at the limit: %v", err)
	}
	lim = DefaultLimits()
	lim.MaxSeries = 10
	if _, err := ParsePage(bytes.NewReader(body), textType, lim); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("series limit: %v", err)
	}
	// A hostile level name is skipped, the rest still read.
	long := strings.Repeat("x", 300)
	page := "# TYPE apiserver_flowcontrol_nominal_limit_seats gauge\n" +
		`apiserver_flowcontrol_nominal_limit_seats{priority_level="` + long + `"} 5` + "\n" +
		`apiserver_flowcontrol_nominal_limit_seats{priority_level="ok"} 7` + "\n" +
		`apiserver_flowcontrol_nominal_limit_seats{priority_level="exempt"} 0` + "\n"
	p, err := ParsePage(strings.NewReader(page), textType, DefaultLimits())
	if err != nil || p.Skipped != 1 || len(p.Levels) != 1 || p.Levels[0].NominalSeats != 7 {
		t.Fatalf("long label: %+v %v", p, err)
	}
	// A line beyond the line limit is refused (without buffering it whole).
	huge := "apiserver_flowcontrol_nominal_limit_seats{priority_level=\"" + strings.Repeat("y", 100<<10) + "\"} 1\n"
	if _, err := ParsePage(strings.NewReader(huge), textType, DefaultLimits()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("line limit: %v", err)
	}
	// Too many levels: the extra ones are skipped.
	var sb strings.Builder
	sb.WriteString("# TYPE apiserver_flowcontrol_nominal_limit_seats gauge\n")
	for i := range 100 {
		sb.WriteString("apiserver_flowcontrol_nominal_limit_seats{priority_level=\"l" + strings.Repeat("0", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "\"} 1\n")
	}
	p, err = ParsePage(strings.NewReader(sb.String()), textType, DefaultLimits())
	if err != nil || len(p.Levels) != DefaultLimits().MaxLevels || p.Skipped != 100-DefaultLimits().MaxLevels {
		t.Fatalf("level cap: levels %d skipped %d err %v", len(p.Levels), p.Skipped, err)
	}
	// NaN, negative and infinite values are skipped.
	bad := "# TYPE apiserver_flowcontrol_current_executing_seats gauge\n" +
		`apiserver_flowcontrol_current_executing_seats{priority_level="a"} NaN` + "\n" +
		`apiserver_flowcontrol_current_executing_seats{priority_level="b"} -3` + "\n" +
		`apiserver_flowcontrol_current_executing_seats{priority_level="c"} +Inf` + "\n"
	p, err = ParsePage(strings.NewReader(bad), textType, DefaultLimits())
	if err != nil || p.Skipped != 3 {
		t.Fatalf("bad values: %+v %v", p, err)
	}
}

// FuzzParsePage: no input makes the parser panic or return values a real API server could not send.
func FuzzParsePage(f *testing.F) {
	f.Add([]byte(readPage(f, "rest-a")[:4096]), false)
	f.Add([]byte("# TYPE apiserver_flowcontrol_request_wait_duration_seconds histogram\n"+
		`apiserver_flowcontrol_request_wait_duration_seconds_bucket{priority_level="a",execute="true",le="0.1"} 3`+"\n"+
		`apiserver_flowcontrol_request_wait_duration_seconds_bucket{priority_level="a",execute="true",le="+Inf"} 4`+"\n"+
		`apiserver_flowcontrol_request_wait_duration_seconds_sum{priority_level="a",execute="true"} 1`+"\n"+
		`apiserver_flowcontrol_request_wait_duration_seconds_count{priority_level="a",execute="true"} 4`+"\n"), false)
	f.Add([]byte{0x05, 0x0a, 0x03, 'a', 'b', 'c'}, true)
	f.Fuzz(func(t *testing.T, body []byte, proto bool) {
		ct := textType
		if proto {
			ct = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
		}
		lim := DefaultLimits()
		lim.MaxBodyBytes = 1 << 20
		p, err := ParsePage(bytes.NewReader(body), ct, lim)
		if err != nil {
			return
		}
		if len(p.Levels) > lim.MaxLevels || p.Series > lim.MaxSeries || len(p.RequestDuration.Bounds) > lim.MaxBuckets {
			t.Fatalf("limits broken: %d levels %d series", len(p.Levels), p.Series)
		}
		for _, lv := range p.Levels {
			if !finite(lv.ExecutingSeats) || !finite(lv.NominalSeats) || !finite(lv.Inqueue) || len(lv.Name) > lim.MaxLabelBytes {
				t.Fatalf("bad level %+v", lv)
			}
		}
		r := NewReading("r", time.Unix(2, 0), p, time.Unix(1, 0), p)
		s := r.Sample()
		_ = s.Validate()
	})
}
