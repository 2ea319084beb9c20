package metrics

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// perWorkload are the families with one series (fanout_workload_state: one per state) per exported workload.
var perWorkload = []string{"fanout_workload_fleet_requests_per_second", "fanout_workload_fleet_rx_bytes_per_second",
	"fanout_workload_fleet_connects_per_second", "fanout_workload_synchronized_nodes", "fanout_workload_projected_load_ratio",
	"fanout_workload_state"}

// gather registers c on a pedantic registry (which checks every series against its description) and returns the
// families by name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// byWorkload returns a family's values by workload label (of the series whose other labels match want).
func byWorkload(mf *dto.MetricFamily, want map[string]string) map[string]float64 {
	out := map[string]float64{}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			if label(m, k) != v {
				continue next
			}
		}
		out[label(m, "workload")] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return out
}

// With the fleet's bound of 20,000 workloads held, a scrape exports at most --metrics.top-workloads workloads under
// their own name plus workload="other" in every per-workload family, whatever the number held; a tripped workload
// that ranks last on every load is still exported with its state (the alert rules read fanout_workload_state), the
// busiest on each load are exported, and "other" carries the rest of the fleet's load so sums stay whole.
func TestScrapeBoundedWith20000Workloads(t *testing.T) {
	const n = 20_000
	eng := heldEngine(t, n)
	last := fixtureWorkload(n - 1)
	if _, err := eng.Manual(11, true, last, "test", 0); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	k := cfg.TopWorkloads
	mfs := gather(t, New(eng, cfg))

	total := 0
	for _, mf := range mfs {
		total += len(mf.GetMetric())
	}
	// Per exported workload: 5 gauges and 5 states; then the trip's held flag (and its closed-loop coverage when
	// enforced), one decision, and nodes, utilization, pairs and folded.
	if bound := 10*(k+1) + 1 + 3 + 1 + 4; total > bound {
		t.Errorf("%d series with %d workloads held, want at most %d", total, n, bound)
	}
	for _, name := range perWorkload {
		mf := mfs[name]
		names := map[string]bool{}
		for _, m := range mf.GetMetric() {
			names[label(m, "workload")] = true
		}
		if len(names) != k+1 || !names[Other] || !names[last] {
			t.Errorf("%s: %d workload labels (other %v, tripped %s %v), want %d: the top %d and other", name, len(names),
				names[Other], last, names[last], k+1, k)
		}
	}
	if got := byWorkload(mfs["fanout_workload_state"], map[string]string{"state": "trip"}); got[last] != 1 || got[Other] != 0 {
		t.Errorf("state trip: %s %v, other %v; want 1 and 0", last, got[last], got[Other])
	}
	if got := byWorkload(mfs["fanout_workload_state"], map[string]string{"state": "observe"}); got[Other] != 1 {
		t.Errorf("state observe of other %v, want 1", got[Other])
	}
	if got := mfs["fanout_aggregator_workloads_folded"].GetMetric()[0].GetGauge().GetValue(); got != n-float64(k) {
		t.Errorf("fanout_aggregator_workloads_folded %v, want %d", got, n-k)
	}
	// The busiest on each load ranking is exported; the quietest unpinned one is not.
	for axis, want := range map[string]string{"requests": fixtureWorkload(0), "rx bytes": busiest(n, func(c fleet.Counters) float64 { return c.RxBytes }),
		"connects": busiest(n, func(c fleet.Counters) float64 { return c.Connects })} {
		if _, ok := byWorkload(mfs["fanout_workload_fleet_requests_per_second"], nil)[want]; !ok {
			t.Errorf("the busiest workload by %s, %s, is not exported", axis, want)
		}
	}
	// Nothing is lost: each rate family sums to the fleet's total.
	for name, rate := range map[string]func(fleet.Counters) float64{
		"fanout_workload_fleet_requests_per_second": func(c fleet.Counters) float64 { return c.Requests },
		"fanout_workload_fleet_rx_bytes_per_second": func(c fleet.Counters) float64 { return c.RxBytes },
		"fanout_workload_fleet_connects_per_second": func(c fleet.Counters) float64 { return c.Connects },
	} {
		want, got := 0.0, 0.0
		for i := range n {
			want += rate(fixtureCounters(i, n))
		}
		for _, v := range byWorkload(mfs[name], nil) {
			got += v
		}
		if got != want {
			t.Errorf("%s sums to %v, want the fleet's %v", name, got, want)
		}
	}
}

// busiest is the fixture's workload with the highest rate (ties: the first name).
func busiest(n int, rate func(fleet.Counters) float64) string {
	best := 0
	for i := range n {
		if r, b := rate(fixtureCounters(i, n)), rate(fixtureCounters(best, n)); r > b || r == b && fixtureWorkload(i) < fixtureWorkload(best) {
			best = i
		}
	}
	return fixtureWorkload(best)
}

// Every workload in a kill-switch state but observe, or with a held release, is exported however quiet it is, even
// beyond the bound; the unpinned ones fill what is left of it.
func TestBoundKeepsDecisions(t *testing.T) {
	var ws []engine.WorkloadSummary
	for i := range 1000 {
		ws = append(ws, engine.WorkloadSummary{Workload: fmt.Sprintf("Deployment/a/w%04d", i), Now: fleet.Counters{Requests: float64(1000 - i)}})
	}
	quiet := map[string]engine.WorkloadSummary{}
	for _, s := range []killswitch.State{killswitch.Alert, killswitch.Trip, killswitch.Releasing, killswitch.Released} {
		name := "Deployment/quiet/" + s.String()
		quiet[name] = engine.WorkloadSummary{Workload: name, State: s}
	}
	quiet["Deployment/quiet/held"] = engine.WorkloadSummary{Workload: "Deployment/quiet/held", Held: "no headroom"}
	for _, w := range quiet {
		ws = append(ws, w)
	}
	for _, k := range []int{1, 3, 5, 6, 10, 200} {
		named, rest := bound(ws, k)
		got := map[string]bool{}
		for _, i := range named {
			got[ws[i].Workload] = true
		}
		for w := range quiet {
			if !got[w] {
				t.Errorf("k=%d: %s not exported", k, w)
			}
		}
		if want := max(k, len(quiet)); len(named) != want || rest.n != len(ws)-want {
			t.Errorf("k=%d: %d named, %d folded; want %d and %d", k, len(named), rest.n, want, len(ws)-want)
		}
		if rest.as.State != killswitch.Observe || rest.as.Workload != Other {
			t.Errorf("k=%d: folded as %s in %s", k, rest.as.Workload, rest.as.State)
		}
	}
}

// bound picks exactly what ranking every workload by each load and taking the axes' ranks in turn would pick (here
// with full sorts), for random loads with ties, and the top third of the bound on each axis is always in.
func TestBoundMatchesFullSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 7, 50, 3000} {
		ws := make([]engine.WorkloadSummary, n)
		for i := range ws {
			ws[i] = engine.WorkloadSummary{Workload: fmt.Sprintf("Deployment/r/w%d", rng.IntN(1_000_000_000)*n+i), Now: fleet.Counters{
				Requests: float64(rng.IntN(20)), RxBytes: rng.Float64() * 1e6, Connects: float64(rng.IntN(3))}}
			if rng.IntN(100) == 0 {
				ws[i].State = killswitch.Trip
			}
		}
		for _, k := range []int{0, 1, 2, 3, 4, 10, 31, 200, n - 1, n, n + 1} {
			named, _ := bound(ws, k)
			if want := fullSortBound(ws, k); !slices.Equal(named, want) {
				t.Fatalf("n=%d k=%d: bound %v, full sort %v", n, k, named, want)
			}
		}
	}
}

// fullSortBound is bound's selection with a full sort per axis (the reference).
func fullSortBound(ws []engine.WorkloadSummary, k int) []int {
	keep := make([]bool, len(ws))
	kept := 0
	for i := range ws {
		if k <= 0 || len(ws) <= k || pinned(&ws[i]) {
			keep[i] = true
			kept++
		}
	}
	var orders [][]int
	for _, load := range loadAxes {
		var order []int
		for i := range ws {
			if !keep[i] {
				order = append(order, i)
			}
		}
		slices.SortFunc(order, func(a, b int) int {
			if la, lb := load(&ws[a]), load(&ws[b]); la != lb {
				if la > lb {
					return -1
				}
				return 1
			}
			return strings.Compare(ws[a].Workload, ws[b].Workload)
		})
		orders = append(orders, order)
	}
	for r := 0; kept < k && r < len(ws); r++ {
		for _, order := range orders {
			if r < len(order) && kept < k && !keep[order[r]] {
				keep[order[r]] = true
				kept++
			}
		}
	}
	var out []int
	for i := range ws {
		if keep[i] {
			out = append(out, i)
		}
	}
	return out
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Error(err)
	}
	if err := (Config{TopWorkloads: -1}).Validate(); err == nil {
		t.Error("a negative bound passed")
	}
}
