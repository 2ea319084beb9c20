package headroom

import (
	"math"
	"strings"
	"testing"
	"time"
)

// cpuBound is an API server whose seats never fill (each request holds one seat while the CPU is shared), as the e2e
// kube-apiserver on two cores: only latency shows it saturating. Cheap GETs and expensive LISTs share the CPU as a
// processor-sharing queue: every kind's latency is its service time over (1 - u), and past capacity the throughput
// fanout measures stays at capacity.
type cpuBound struct {
	capR float64
}

func (c *cpuBound) served(demand float64) float64 { return math.Min(demand, c.capR) }

func (c *cpuBound) sample(at time.Time, demand, listShare float64) APIServerSample {
	u := demand / c.capR
	stretch := 1 / math.Max(0.01, 1-math.Min(u, 0.99))
	served := c.served(demand)
	return APIServerSample{Time: at, Replica: "10.0.0.1:6443", ExecutingSeats: math.Min(20, 2*u), LimitSeats: 600,
		Latencies: []KeyedLatency{
			{Key: "GET /configmaps/ namespace", Count: 5 * 50, Mean: 0.002 * stretch},
			{Key: "LIST /pods/ cluster", Count: 5 * served * listShare, Mean: 0.4 * stretch},
		}}
}

func drive(t *testing.T, e *Estimator, c *cpuBound, from, secs int, demand func(int) float64, listShare float64) Estimate {
	t.Helper()
	var est Estimate
	for s := from; s < from+secs; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		d := demand(s)
		if s%5 == 0 {
			if err := e.ObserveAPIServer(c.sample(now, d, listShare)); err != nil {
				t.Fatal(err)
			}
		}
		est = e.Step(now, Load{Requests: c.served(d), RxBytes: c.served(d) * 1e4}, nil)
	}
	return est
}

// Seats say nothing on a CPU-bound API server: its latency does, and once it saturates the load it serves is its
// capacity, even when no point below saturation was ever seen (a rollout that overloads at once).
func TestLatencyLearnsCPUBoundCapacity(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 8 }, 0.1) // calm: baselines
	est := drive(t, e, c, 120, 60, func(int) float64 { return 900 }, 0.1)
	if !est.Known() || est.UtilizationSource != FromLatency || est.Utilization < 0.9 {
		t.Fatalf("saturated server not seen through latency: %s", est.String())
	}
	if !within(est.CapacityRequestsPerS, 400, 0.15) {
		t.Fatalf("capacity %.0f req/s, the server serves 400 at saturation: %s", est.CapacityRequestsPerS, est.String())
	}
}

// A change in the mix (many more slow LISTs among fast GETs) at low utilization is not contention: each kind is
// judged against its own baseline.
func TestLatencyMixShiftIsNotContention(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 10000}
	drive(t, e, c, 0, 120, func(int) float64 { return 20 }, 0.05)
	est := drive(t, e, c, 120, 60, func(int) float64 { return 20 }, 0.9)
	if est.UtilizationLatency > 0.05 {
		t.Fatalf("mix shift read as contention: latency utilization %.2f", est.UtilizationLatency)
	}
}

// An overload that lasts does not become the latency baseline, so it keeps reading as an overload.
func TestLatencyOverloadDoesNotBecomeNormal(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 40 }, 0.1)
	est := drive(t, e, c, 120, 1800, func(int) float64 { return 390 }, 0.1)
	if est.UtilizationLatency < 0.9 {
		t.Fatalf("30 min at 97%% now reads %.2f", est.UtilizationLatency)
	}
}

// A capacity learned while the API server was saturated by something fanout does not see gives way to the evidence
// that it later carried more without saturating.
func TestSaturatedCapacityFloorsAtServedLoad(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 40 }, 0.1)
	c.capR = 50 // etcd slows down: the server saturates at 50 req/s for a minute
	drive(t, e, c, 120, 60, func(int) float64 { return 60 }, 0.1)
	c.capR = 400
	est := drive(t, e, c, 180, 300, func(s int) float64 { return 40 + float64(s-180) }, 0.1)
	if est.CapacityRequestsPerS < 300 {
		t.Fatalf("capacity stuck at the slow-etcd minute: %s", est.String())
	}
}

func TestLatencyBaselinesBoundedAndPersisted(t *testing.T) {
	e := newEst(t)
	ks := make([]KeyedLatency, MaxLatencyKeys)
	for round := range 3 {
		for i := range ks {
			ks[i] = KeyedLatency{Key: string(rune('a'+round)) + string(rune(0x100+i)), Count: 1, Mean: 0.01}
		}
		if err := e.ObserveAPIServer(APIServerSample{Time: t0.Add(time.Duration(round+1) * time.Second), Replica: "r", Latencies: ks}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.latBase.base); n > MaxLatencyKeys {
		t.Fatalf("%d baselines kept, bound %d", n, MaxLatencyKeys)
	}
	data, err := e.MarshalState(t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEst(t)
	if err := e2.UnmarshalState(data, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if len(e2.latBase.base) != len(e.latBase.base) {
		t.Fatalf("restored %d baselines of %d", len(e2.latBase.base), len(e.latBase.base))
	}
	bad := APIServerSample{Time: t0.Add(time.Hour), Replica: "r", Latencies: []KeyedLatency{{Key: "x", Count: 1, Mean: math.NaN()}}}
	if err := e.ObserveAPIServer(bad); err == nil {
		t.Fatal("NaN latency accepted")
	}
}

// Latency 10x its baseline is saturation: the utilization in force reaches 1 (the overload rule's bar), which a
// utilization read from latency alone (1 - 1/inflation) never would.
func TestLatencySaturationReachesOne(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 8 }, 0.1)
	est := drive(t, e, c, 120, 20, func(int) float64 { return 395 }, 0.1)
	if !est.Saturated || est.Utilization < 1 || est.UtilizationLatency >= 1 {
		t.Fatalf("saturated server: saturated %v, utilization %.2f (latency %.2f)", est.Saturated, est.Utilization, est.UtilizationLatency)
	}
	if !strings.Contains(est.String(), "saturated (latency)") {
		t.Fatalf("reason does not say saturated: %s", est.String())
	}
	est = drive(t, e, c, 140, 20, func(int) float64 { return 200 }, 0.1)
	if est.Saturated || est.Utilization >= 1 {
		t.Fatalf("half-loaded server read as saturated: %s", est.String())
	}
}

// The requests a rollout brings (kinds never seen before) arrive with the overload: they do not take it as their
// baseline, so they do not dilute what the known kinds show.
func TestNewKindsDuringOverloadDoNotDilute(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 8 }, 0.1)
	var est Estimate
	for s := 120; s < 160; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if s%5 == 0 {
			smp := c.sample(now, 396, 0.1)
			// The rollout's discovery GETs and LISTs: many, new, already slow.
			smp.Latencies = append(smp.Latencies, KeyedLatency{Key: "GET /discovery/ cluster", Count: 5 * 300, Mean: 0.5},
				KeyedLatency{Key: "LIST /pods/ cluster", Count: 5 * 50, Mean: 40})
			if err := e.ObserveAPIServer(smp); err != nil {
				t.Fatal(err)
			}
		}
		est = e.Step(now, Load{Requests: 396, RxBytes: 396e4}, nil)
	}
	if !est.Saturated {
		t.Fatalf("new kinds diluted the overload: latency utilization %.2f", est.UtilizationLatency)
	}
}

// Inside an overload, a reading that is only 7x slower than the baseline does not end the saturation (the overload
// rule counts consecutive seconds); one back near normal does.
func TestSaturationHysteresis(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 8 }, 0.1)
	if est := drive(t, e, c, 120, 10, func(int) float64 { return 396 }, 0.1); !est.Saturated {
		t.Fatalf("not saturated at 99%%: %s", est.String())
	}
	if est := drive(t, e, c, 130, 5, func(int) float64 { return 343 }, 0.1); !est.Saturated || est.Utilization < 1 { // 7x
		t.Fatalf("one quicker reading ended the saturation: %s", est.String())
	}
	if est := drive(t, e, c, 135, 5, func(int) float64 { return 200 }, 0.1); est.Saturated { // 2x
		t.Fatalf("still saturated at half load: %s", est.String())
	}
}

// After the load that saturated the API server is cut off (the kill switch), the server stays saturated for a while,
// working off requests whose clients are gone, while the load fanout measures is only what is left. Those seconds
// say nothing of its capacity: the capacity learned during the overload stays, and the model does not read the
// remaining load as an overload.
func TestDrainAfterCutIsNotCapacity(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 12 }, 0.1)   // calm
	drive(t, e, c, 120, 30, func(int) float64 { return 900 }, 0.1) // the rollout saturates it
	est := e.Estimate()
	if !est.Known() || !within(est.CapacityRequestsPerS, 400, 0.2) {
		t.Fatalf("after the overload: %s, want ~400 req/s", est.String())
	}
	// Cut: fanout's load falls to 12 req/s; the server drains at saturation for 40 s.
	for s := 150; s < 190; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if s%5 == 0 {
			if err := e.ObserveAPIServer(c.sample(now, 900, 0.1)); err != nil {
				t.Fatal(err)
			}
		}
		est = e.Step(now, Load{Requests: 12, RxBytes: 12 * 1e4}, nil)
		if !est.Saturated {
			t.Fatalf("second %d: the draining server reads %s, want saturated", s, est.String())
		}
	}
	// Its latency then falls back over half a minute (fewer requests left in flight), still with 12 req/s measured.
	for s := 190; s < 220; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		if s%5 == 0 {
			if err := e.ObserveAPIServer(c.sample(now, 350-10*float64(s-190), 0.1)); err != nil {
				t.Fatal(err)
			}
		}
		est = e.Step(now, Load{Requests: 12, RxBytes: 12 * 1e4}, nil)
	}
	est = drive(t, e, c, 220, 120, func(int) float64 { return 30 }, 0.1) // calm again
	if !within(est.CapacityRequestsPerS, 400, 0.25) {
		t.Fatalf("capacity after the drain: %s, want ~400 req/s (the drain is not what it serves)", est.String())
	}
	if u := est.UtilizationOf(Load{Requests: 30, RxBytes: 30 * 1e4}); u > 0.5 {
		t.Fatalf("the model reads 30 req/s, served calmly, as %.2f busy: %s", u, est.String())
	}
}

// A capacity the data left too low (learned in a saturation it misread) does not outlive the evidence that the API
// server, reading calm, carried more: no load served calmly reads as an overload to the model.
func TestCalmLoadFloorsCapacity(t *testing.T) {
	e := newEst(t)
	c := &cpuBound{capR: 400}
	drive(t, e, c, 0, 120, func(int) float64 { return 12 }, 0.1)
	c.capR = 20 // a minute in which it saturates at 20 req/s (a slow etcd)
	drive(t, e, c, 120, 60, func(int) float64 { return 40 }, 0.1)
	c.capR = 400
	// Calm again at 60 req/s: seats and latency read below the fit range, so no fit point is taken.
	est := drive(t, e, c, 180, 120, func(int) float64 { return 60 }, 0.1)
	if est.Saturated || math.Max(est.UtilizationSeats, est.UtilizationLatency) >= 0.9 {
		t.Fatalf("calm server reads %s", est.String())
	}
	if u := est.UtilizationOf(Load{Requests: 60, RxBytes: 60 * 1e4}); u >= 0.95 {
		t.Fatalf("the model reads the 60 req/s the server carries calmly as %.2f busy: %s", u, est.String())
	}
	// The floor survives a restart.
	now := t0.Add(300 * time.Second)
	data, err := e.MarshalState(now)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEst(t)
	if err := e2.UnmarshalState(data, now); err != nil {
		t.Fatal(err)
	}
	restored := e2.Estimate()
	if u := restored.UtilizationOf(Load{Requests: 60, RxBytes: 60 * 1e4}); u >= 0.95 {
		t.Fatalf("after a restart the model reads 60 req/s as %.2f busy: %s", u, restored.String())
	}
}
