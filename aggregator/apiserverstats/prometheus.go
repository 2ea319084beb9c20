package apiserverstats

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// PrometheusConfig configures reading the same series from a Prometheus server.
type PrometheusConfig struct {
	URL string
	// Selector narrows every series to the API servers' (default `job="apiserver"`, as kube-prometheus labels them).
	Selector string
	// Interval between query rounds; Window is the range of increase() for counters and histograms (at least a few
	// of Prometheus' scrape intervals).
	Interval, Window, Timeout time.Duration
	Limits                    Limits
}

// Defaults fills unset fields.
func (c *PrometheusConfig) Defaults() {
	if c.Selector == "" {
		c.Selector = `job="apiserver"`
	}
	if c.Interval <= 0 {
		c.Interval = 15 * time.Second
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Timeout <= 0 {
		c.Timeout = min(c.Interval, 10*time.Second)
	}
	if c.Limits == (Limits{}) {
		c.Limits = DefaultLimits()
	}
}

// PromSource reads readings, one per API server instance, from Prometheus.
type PromSource struct {
	cfg    PrometheusConfig
	api    promv1.API
	logger *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	status ReplicaStatus
}

// NewPromSource builds the Prometheus HTTP API client.
func NewPromSource(cfg PrometheusConfig, logger *slog.Logger) (*PromSource, error) {
	cfg.Defaults()
	if strings.ContainsAny(cfg.Selector, "{}") {
		return nil, fmt.Errorf("prometheus selector %q: give matchers without braces, e.g. job=\"apiserver\"", cfg.Selector)
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: &limitTransport{rt: http.DefaultTransport, max: cfg.Limits.MaxBodyBytes}})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return &PromSource{cfg: cfg, api: promv1.NewAPI(c), logger: logger.With("component", "apiserverstats", "source", "prometheus"),
		now: time.Now, status: ReplicaStatus{Replica: "prometheus"}}, nil
}

// Status returns the query state (Replica "prometheus").
func (p *PromSource) Status() []ReplicaStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return []ReplicaStatus{p.status}
}

// Run queries every Interval until ctx ends and calls sink with one reading per instance.
func (p *PromSource) Run(ctx context.Context, sink func(Reading)) {
	wait := jitter(p.cfg.Interval) / 2
	failures := 0
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := p.now()
		rs, err := p.Read(ctx, start)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		st := &p.status
		st.Scrapes++
		st.Duration, st.Success = p.now().Sub(start), err == nil
		if err != nil {
			st.Failures++
			st.ConsecutiveFailures++
			st.LastError = err.Error()
		} else {
			st.ConsecutiveFailures, st.LastSuccess, st.LastError = 0, start, ""
		}
		p.mu.Unlock()
		if err != nil {
			failures++
			wait = Backoff(p.cfg.Interval, max(time.Minute, p.cfg.Interval), failures)
			if failures == 1 || failures%10 == 0 {
				p.logger.Warn("prometheus query failed; backing off", "err", err, "failures", failures)
			}
			continue
		}
		failures = 0
		for _, r := range rs {
			sink(r)
		}
		wait = jitter(p.cfg.Interval)
	}
}

type promQuery struct {
	expr string
	// set stores one result series into the instance's reading.
	set func(r *Reading, lv *LevelReading, le float64, v float64)
	// perLevel: grouped by priority_level; perBucket: grouped by le.
	perLevel, perBucket bool
}

func (p *PromSource) queries() []promQuery {
	sel := p.cfg.Selector
	lvl := `{` + joinMatchers(sel, `priority_level!="exempt"`) + `}`
	exec := `{` + joinMatchers(sel, `priority_level!="exempt"`, `execute="true"`) + `}`
	req := `{` + joinMatchers(sel, `verb!~"WATCH|CONNECT"`) + `}`
	w := "[" + model.Duration(p.cfg.Window).String() + "]"
	byLevel := func(expr string) string { return "sum by (instance, priority_level) (" + expr + ")" }
	byLe := func(expr string) string { return "sum by (instance, le) (" + expr + ")" }
	byInst := func(expr string) string { return "sum by (instance) (" + expr + ")" }
	return []promQuery{
		{expr: byLevel(MetricExecutingSeats + lvl), perLevel: true, set: func(_ *Reading, lv *LevelReading, _, v float64) { lv.ExecutingSeats = v }},
		{expr: byLevel(MetricNominalSeats + lvl), perLevel: true, set: func(_ *Reading, lv *LevelReading, _, v float64) { lv.NominalSeats = v }},
		{expr: byLevel(MetricInqueue + lvl), perLevel: true, set: func(_ *Reading, lv *LevelReading, _, v float64) { lv.Inqueue = v }},
		{expr: byLevel("increase(" + MetricRejected + lvl + w + ")"), perLevel: true, set: func(_ *Reading, lv *LevelReading, _, v float64) { lv.Rejected = v }},
		{expr: byInst(MetricRejected + lvl), set: func(r *Reading, _ *LevelReading, _, v float64) { r.RejectedTotal = v }},
		{expr: byLevel("increase(" + MetricWaitDuration + "_count" + exec + w + ")"), perLevel: true, set: func(_ *Reading, lv *LevelReading, _, v float64) { lv.WaitCount = v }},
		{expr: byLevel("increase(" + MetricWaitDuration + "_sum" + exec + w + ")"), perLevel: true, set: func(_ *Reading, lv *LevelReading, _, v float64) { lv.WaitSum = v }},
		{expr: byLe("increase(" + MetricWaitDuration + "_bucket" + exec + w + ")"), perBucket: true, set: func(r *Reading, _ *LevelReading, le, v float64) { r.Wait = setBucket(r.Wait, le, v) }},
		{expr: byLe("increase(" + MetricRequestDuration + "_bucket" + req + w + ")"), perBucket: true, set: func(r *Reading, _ *LevelReading, le, v float64) { r.Latency = setBucket(r.Latency, le, v) }},
		{expr: byInst("increase(" + MetricRequestDuration + "_count" + req + w + ")"), set: func(r *Reading, _ *LevelReading, _, v float64) { r.Latency.Count = v }},
		{expr: byInst("increase(" + MetricRequestDuration + "_sum" + req + w + ")"), set: func(r *Reading, _ *LevelReading, _, v float64) { r.Latency.Sum = v }},
	}
}

func joinMatchers(ms ...string) string {
	var out []string
	for _, m := range ms {
		if strings.TrimSpace(m) != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, ",")
}

// Read runs one round of queries evaluated at ts and returns one reading per instance, sorted by instance.
func (p *PromSource) Read(ctx context.Context, ts time.Time) ([]Reading, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	type inst struct {
		r      Reading
		levels map[string]*LevelReading
	}
	insts := map[string]*inst{}
	get := func(name string) *inst {
		if in := insts[name]; in != nil {
			return in
		}
		in := &inst{r: Reading{Replica: name, At: ts, Interval: p.cfg.Window, Deltas: true}, levels: map[string]*LevelReading{}}
		insts[name] = in
		return in
	}
	series := 0
	for _, q := range p.queries() {
		v, _, err := p.api.Query(ctx, q.expr, ts)
		if err != nil {
			return nil, fmt.Errorf("query %s: %w", q.expr, err)
		}
		vec, ok := v.(model.Vector)
		if !ok {
			return nil, fmt.Errorf("query %s: want a vector, got %s", q.expr, v.Type())
		}
		series += len(vec)
		if series > p.cfg.Limits.MaxSeries {
			return nil, fmt.Errorf("more than %d series: %w", p.cfg.Limits.MaxSeries, ErrTooLarge)
		}
		for _, s := range vec {
			val := float64(s.Value)
			name := string(s.Metric["instance"])
			if name == "" {
				name = "prometheus"
			}
			if len(name) > p.cfg.Limits.MaxLabelBytes || (insts[name] == nil && len(insts) >= 64) {
				continue
			}
			in := get(name)
			in.r.Series++
			if !finite(val) || !labelsOK(s.Metric, p.cfg.Limits.MaxLabelBytes) {
				in.r.Skipped++
				continue
			}
			var lv *LevelReading
			if q.perLevel {
				pl := string(s.Metric["priority_level"])
				if pl == "" || pl == ExemptLevel {
					continue
				}
				if lv = in.levels[pl]; lv == nil {
					if len(in.levels) >= p.cfg.Limits.MaxLevels {
						in.r.Skipped++
						continue
					}
					lv = &LevelReading{Name: pl}
					in.levels[pl] = lv
				}
			}
			le := math.Inf(1)
			if q.perBucket {
				if le, err = strconv.ParseFloat(string(s.Metric["le"]), 64); err != nil || math.IsNaN(le) {
					in.r.Skipped++
					continue
				}
				if r := &in.r; len(r.Wait.Bounds) >= p.cfg.Limits.MaxBuckets && len(r.Latency.Bounds) >= p.cfg.Limits.MaxBuckets {
					in.r.Skipped++
					continue
				}
			}
			q.set(&in.r, lv, le, val)
		}
	}
	out := make([]Reading, 0, len(insts))
	for _, in := range insts {
		r := in.r
		names := make([]string, 0, len(in.levels))
		for n := range in.levels {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			lv := *in.levels[n]
			if lv.NominalSeats > 0 {
				r.ExecutingSeats += lv.ExecutingSeats
				r.NominalSeats += lv.NominalSeats
			}
			r.Inqueue += lv.Inqueue
			r.Rejected += lv.Rejected
			r.Levels = append(r.Levels, lv)
		}
		r.Wait = finishBuckets(r.Wait)
		r.Latency = finishBuckets(r.Latency)
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Replica < out[j].Replica })
	return out, nil
}

// setBucket records a cumulative bucket count; +Inf is the total count.
func setBucket(h Histogram, le, v float64) Histogram {
	if math.IsInf(le, 1) {
		h.Count = v
		return h
	}
	i := sort.SearchFloat64s(h.Bounds, le)
	if i < len(h.Bounds) && h.Bounds[i] == le {
		h.Counts[i] = v
		return h
	}
	h.Bounds = append(h.Bounds, 0)
	h.Counts = append(h.Counts, 0)
	copy(h.Bounds[i+1:], h.Bounds[i:])
	copy(h.Counts[i+1:], h.Counts[i:])
	h.Bounds[i], h.Counts[i] = le, v
	return h
}

// finishBuckets makes counts monotonic (increase() extrapolates each bucket separately) and fills Count from the
// last bucket when the +Inf bucket was missing.
func finishBuckets(h Histogram) Histogram {
	for i := 1; i < len(h.Counts); i++ {
		h.Counts[i] = math.Max(h.Counts[i], h.Counts[i-1])
	}
	if n := len(h.Counts); n > 0 && h.Count < h.Counts[n-1] {
		h.Count = h.Counts[n-1]
	}
	return h
}

func labelsOK(m model.Metric, maxLen int) bool {
	for k, v := range m {
		if len(k) > maxLen || len(v) > maxLen {
			return false
		}
	}
	return true
}

// limitTransport refuses response bodies larger than max.
type limitTransport struct {
	rt  http.RoundTripper
	max int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, fmt.Errorf("response of %d bytes: %w", resp.ContentLength, ErrTooLarge)
	}
	resp.Body = &limitBody{ReadCloser: resp.Body, lr: limitedReader{r: resp.Body, n: t.max}}
	return resp, nil
}

type limitBody struct {
	io.ReadCloser
	lr limitedReader
}

func (b *limitBody) Read(p []byte) (int, error) {
	n, err := b.lr.Read(p)
	if b.lr.exceeded {
		return n, errors.New("prometheus response too large")
	}
	return n, err
}
