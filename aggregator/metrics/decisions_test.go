package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// A node credential sending fresh workload names while the API server is overloaded: a fresh name has no baseline, so
// all of its load is excess and it is an overload contributor, which the kill switch alerts on (and trips, up to
// --killswitch.max-trips). With 50,000 distinct names decided on, fanout_decisions_total keeps at most
// engine.MaxDecisionWorkloads workloads by name (plus those not in observe) and workload="other"; the sum over its
// workloads of each action never decreases and always equals the decisions taken.
func TestDecisionSeriesBoundedUnderFreshNames(t *testing.T) {
	const (
		names     = 50_000
		perSecond = 10
		warm      = 31 // seconds before a name counts as arrived while fanout watched
		gatherer  = 97 // scrape every this many seconds
	)
	cfg := engine.DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 1000
	cfg.Fleet.Forget = 5 * time.Second
	eng := engine.New(cfg, nil)
	eng.Start(0)
	c := New(eng, DefaultConfig())

	taken := map[killswitch.Action]float64{}
	last := map[string]float64{} // action -> sum at the last scrape
	seen := map[string]float64{} // action/workload -> value at the last scrape (per series: never lower)
	maxSeries := 0
	scrape := func(sec int64) {
		mf := gather(t, c)["fanout_decisions_total"]
		sums := map[string]float64{}
		named := map[string]bool{}
		for _, m := range mf.GetMetric() {
			a, w, v := label(m, "action"), label(m, "workload"), m.GetCounter().GetValue()
			sums[a] += v
			if w != Other {
				named[w] = true
			}
			if k := a + "/" + w; v < seen[k] {
				t.Fatalf("t=%d: %s went from %v to %v", sec, k, seen[k], v)
			}
		}
		for a, v := range sums {
			if v < last[a] {
				t.Fatalf("t=%d: sum of fanout_decisions_total{action=%q} went from %v to %v", sec, a, last[a], v)
			}
			if v != taken[killswitch.Action(a)] {
				t.Fatalf("t=%d: sum of fanout_decisions_total{action=%q} is %v, %v decisions taken", sec, a, v, taken[killswitch.Action(a)])
			}
		}
		for a, v := range taken {
			if sums[string(a)] != v {
				t.Fatalf("t=%d: %v %s decisions taken, the series sum to %v", sec, v, a, sums[string(a)])
			}
		}
		last = sums
		seen = map[string]float64{}
		for _, m := range mf.GetMetric() {
			seen[label(m, "action")+"/"+label(m, "workload")] = m.GetCounter().GetValue()
		}
		// Live names: at most AlertClear (30 s) of fresh contributors alerted and the trips.
		if bound := engine.MaxDecisionWorkloads + perSecond*35 + 3; len(named) > bound {
			t.Fatalf("t=%d: %d workloads named in fanout_decisions_total, want at most %d", sec, len(named), bound)
		}
		maxSeries = max(maxSeries, len(mf.GetMetric()))
	}

	decided := map[string]bool{}
	next := 0
	for sec := int64(0); len(decided) < names; sec++ {
		if sec > 20_000 {
			t.Fatalf("only %d names decided on by t=%d", len(decided), sec)
		}
		r := &engine.Report{Node: "node-0", Second: sec, Sequence: uint64(sec + 1), Workloads: []engine.WorkloadReport{
			{Workload: "Deployment/steady/web", Pods: 1, Counters: fleet.Counters{Requests: 100}}}}
		if sec >= warm {
			for range perSecond {
				r.Workloads = append(r.Workloads, engine.WorkloadReport{Workload: fmt.Sprintf("Deployment/attack/w%06d", next), Pods: 1,
					Counters: fleet.Counters{Requests: 120}})
				next++
			}
		}
		if err := eng.Ingest(r); err != nil {
			t.Fatal(err)
		}
		for _, d := range eng.CloseThrough(sec) {
			taken[d.Action]++
			decided[d.Workload] = true
		}
		if sec%gatherer == 0 {
			scrape(sec)
		}
	}
	scrape(-1)
	if taken[killswitch.ActionTrip] == 0 || taken[killswitch.ActionAlert]+taken[killswitch.ActionTrip] < names {
		t.Fatalf("decisions %v: want the overload trips and an alert on every other name", taken)
	}
	t.Logf("%d names decided on (%v), at most %d fanout_decisions_total series", len(decided), taken, maxSeries)
}
