package latency

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var samples []Sample
	t0 := time.Unix(1000, 0)
	for i := 1; i <= 100; i++ {
		var err error
		if i == 100 {
			err = errors.New("timeout")
		}
		samples = append(samples, Sample{At: t0.Add(time.Duration(i) * 10 * time.Millisecond), Latency: time.Duration(i) * time.Millisecond, Err: err})
	}
	st, err := Summarize(samples)
	if err != nil {
		t.Fatal(err)
	}
	if st.N != 100 || st.Errors != 1 || st.P50 != 50*time.Millisecond || st.P99 != 99*time.Millisecond || st.Max != 100*time.Millisecond {
		t.Fatalf("stats = %+v", st)
	}
	if _, err := Summarize(nil); !errors.Is(err, ErrNoSamples) {
		t.Fatalf("empty: got %v", err)
	}
	ws := Windows(samples, 250*time.Millisecond)
	if len(ws) != 4 || ws[0].Stats.N != 25 || ws[3].Stats.N != 25 || ws[3].Stats.Errors != 1 {
		t.Fatalf("windows: %d, first n=%d", len(ws), ws[0].Stats.N)
	}
}

func TestProbeRunsBoundedAndTimesCalls(t *testing.T) {
	var calls atomic.Int64
	p := New(Config{Interval: 5 * time.Millisecond}, func(ctx context.Context) error {
		calls.Add(1)
		time.Sleep(2 * time.Millisecond)
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	p.Run(ctx)
	s := p.Samples()
	if len(s) < 10 || len(s) > 45 {
		t.Fatalf("%d samples in 200 ms at 5 ms interval", len(s))
	}
	for _, x := range s {
		if x.Latency < 2*time.Millisecond || x.Err != nil {
			t.Fatalf("bad sample %+v", x)
		}
	}
	if got := len(p.Between(s[0].At, s[0].At.Add(time.Nanosecond))); got != 1 {
		t.Fatalf("Between: %d", got)
	}
}
