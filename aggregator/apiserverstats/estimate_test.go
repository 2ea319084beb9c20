package apiserverstats

import (
	"math"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/aggregator/headroom"
)

// The estimator, fed the readings of the recorded pages and the LIST load that produced them (as fanout's kernels
// would measure it: LISTs/s and their response bytes/s), learns a capacity within what the recording supports. The
// server was CPU-bound (2 cores): tripling the LIST loops from 8 to 24 raised the LISTs served only from 2.85/s to
// 3.51/s, a throughput plateau, while its seats stayed at 11% and 32% of their limit. The recording's cheap-request
// traffic is missing (one GET per 5 s: its prober did not run) and its LISTs never ran at rest, so no request kind
// has a baseline that could show the saturation through latency: the estimate rests on seats and must lie between
// the load served (never below it) and what seats imply. The plateau itself is learned from live latency in
// e2e/saturation (within 3% of the measured saturation load).
func TestEstimatorOnRecordedPages(t *testing.T) {
	meta := loadMeta(t)
	est, err := headroom.New(headroom.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	listBytes := meta.ListMB * 1e6
	t0 := time.Unix(1_700_000_000, 0)
	sec := 0
	lo, hi := math.Inf(1), 0.0
	var last headroom.Estimate
	// Several rounds: each phase's reading repeated as the API server would show it while that load holds.
	for round := range 3 {
		for _, phase := range []string{"rest", "load", "overload", "load"} {
			var ph recordPhase
			for _, p := range meta.Phases {
				if p.Name == phase {
					ph = p
				}
			}
			a, b := parseRecorded(t, phase+"-a"), parseRecorded(t, phase+"-b")
			load := headroom.Load{Requests: ph.ListsPerS + 2, RxBytes: ph.ListsPerS*listBytes + 2e4}
			for i := range 10 {
				sec++
				now := t0.Add(time.Duration(sec) * time.Second)
				if i == 5 {
					r := NewReading("127.0.0.1:6443", now, b, now.Add(-5*time.Second), a)
					if err := est.ObserveAPIServer(r.Sample()); err != nil {
						t.Fatalf("round %d %s: %v", round, phase, err)
					}
					if u := r.Utilization(); u >= 0.05 && phase != "rest" {
						lo, hi = math.Min(lo, load.RxBytes/u), math.Max(hi, load.RxBytes/u)
					}
				}
				last = est.Step(now, load, nil)
			}
			if phase == "overload" && math.Abs(last.UtilizationSeats-0.32) > 0.05 {
				t.Fatalf("seat utilization under overload %v, the page says 0.32", last.UtilizationSeats)
			}
		}
	}
	var load, overload float64
	for _, p := range meta.Phases {
		switch p.Name {
		case "load":
			load = p.ListsPerS * listBytes
		case "overload":
			overload = p.ListsPerS * listBytes
		}
	}
	t.Logf("estimate: %s; served %.0f MB/s at 8 loops, %.0f MB/s at 24; seats would imply %.0f..%.0f MB/s",
		last.String(), load/1e6, overload/1e6, lo/1e6, hi/1e6)
	if !last.Known() || last.Source != headroom.SourceLearned {
		t.Fatalf("nothing learned: %+v", last)
	}
	if c := last.CapacityRxBytesPerS; c < 0.9*load || c > 1.1*hi {
		t.Fatalf("capacity %.0f MB/s outside what the pages support (%.0f..%.0f MB/s)", c/1e6, 0.9*load/1e6, 1.1*hi/1e6)
	}
}
