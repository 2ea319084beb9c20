package latency

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Sample is one timed call.
type Sample struct {
	At      time.Time // when the call started
	Latency time.Duration
	Err     error
}

// Config of a probe.
type Config struct {
	// Interval between call starts (default 100 ms). Calls do not overlap: a slow call delays the next one, as it
	// would for a real client, and its latency is what gets recorded.
	Interval time.Duration
	// Timeout per call (default 10 s).
	Timeout time.Duration
	// MaxSamples bounds memory (default 100000; the oldest are kept, later ones dropped).
	MaxSamples int
}

// Probe times calls made by a caller-supplied function (typically a client-go GET of one ConfigMap as a user that
// nothing else uses).
type Probe struct {
	cfg  Config
	call func(context.Context) error

	mu      sync.Mutex
	samples []Sample
}

// New returns a probe around call.
func New(cfg Config, call func(context.Context) error) *Probe {
	if cfg.Interval <= 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxSamples <= 0 {
		cfg.MaxSamples = 100000
	}
	return &Probe{cfg: cfg, call: call}
}

// Run calls until ctx ends (callers bound it with a deadline).
func (p *Probe) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		err := p.call(cctx)
		cancel()
		if ctx.Err() != nil {
			return // the probe was stopped mid-call: not a server sample
		}
		p.add(Sample{At: start, Latency: time.Since(start), Err: err})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Probe) add(s Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) < p.cfg.MaxSamples {
		p.samples = append(p.samples, s)
	}
}

// Samples returns a copy of all samples in time order.
func (p *Probe) Samples() []Sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Sample(nil), p.samples...)
}

// Between returns the samples that started in [from, to).
func (p *Probe) Between(from, to time.Time) []Sample {
	var out []Sample
	for _, s := range p.Samples() {
		if !s.At.Before(from) && s.At.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// Stats summarises a set of samples. Failed calls count with their latency (a timeout is a very slow answer).
type Stats struct {
	N, Errors     int
	P50, P99, Max time.Duration
}

func (s Stats) String() string {
	return fmt.Sprintf("n=%d errors=%d p50=%s p99=%s max=%s", s.N, s.Errors,
		s.P50.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.Max.Round(10*time.Microsecond))
}

// ErrNoSamples is returned by Summarize for an empty window.
var ErrNoSamples = errors.New("no latency samples in window")

// Summarize computes nearest-rank percentiles.
func Summarize(samples []Sample) (Stats, error) {
	if len(samples) == 0 {
		return Stats{}, ErrNoSamples
	}
	lat := make([]time.Duration, len(samples))
	st := Stats{N: len(samples)}
	for i, s := range samples {
		lat[i] = s.Latency
		if s.Err != nil {
			st.Errors++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	st.P50, st.P99, st.Max = Percentile(lat, 0.50), Percentile(lat, 0.99), lat[len(lat)-1]
	return st, nil
}

// Percentile is the nearest-rank percentile q in (0, 1] of sorted values.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// Window is a summary over one time bucket (for plots).
type Window struct {
	Start time.Time
	Stats Stats
}

// Windows buckets samples by width from their first start; empty buckets are omitted.
func Windows(samples []Sample, width time.Duration) []Window {
	if len(samples) == 0 || width <= 0 {
		return nil
	}
	t0 := samples[0].At
	buckets := map[int][]Sample{}
	maxIdx := 0
	for _, s := range samples {
		i := int(s.At.Sub(t0) / width)
		buckets[i] = append(buckets[i], s)
		maxIdx = max(maxIdx, i)
	}
	var out []Window
	for i := 0; i <= maxIdx; i++ {
		if st, err := Summarize(buckets[i]); err == nil {
			out = append(out, Window{Start: t0.Add(time.Duration(i) * width), Stats: st})
		}
	}
	return out
}
