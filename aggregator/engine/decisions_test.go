package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// 50,000 distinct names decided on, some of them live (not in observe) for a while, some decided on again after
// their names were dropped: at most max(limit, live) names are kept after each prune, a live name is never dropped,
// every count of a kept name only grows, and the counts of each action sum to the decisions taken (the folded ones
// included), so the sum over workloads never decreases.
func TestDecisionCountsBounded(t *testing.T) {
	const (
		names = 50_000
		limit = 100
	)
	c := newDecisionCounts(limit)
	rng := rand.New(rand.NewPCG(9, 10))
	actions := []killswitch.Action{killswitch.ActionAlert, killswitch.ActionTrip, killswitch.ActionRelease}
	live := map[string]int{} // name -> decisions left while live
	taken := map[killswitch.Action]uint64{}
	prev := map[DecisionCount]uint64{}
	maxLive := 0
	name := func(i int) string { return fmt.Sprintf("Deployment/attack/w%06d", i) }
	for i := range names {
		w := name(i)
		if i > 0 && rng.IntN(20) == 0 {
			w = name(rng.IntN(i)) // an older name again, maybe dropped
		}
		a := actions[rng.IntN(len(actions))]
		// Live for a while: briefly in the first half, then long enough that more than limit are live at once.
		if span := 3 * limit; rng.IntN(50) == 0 {
			if i >= names/2 {
				span = 200 * limit
			}
			live[w] = 1 + rng.IntN(span)
		}
		c.add(a, w)
		taken[a]++
		c.prune(func(w string) bool { return live[w] > 0 })
		maxLive = max(maxLive, len(live))
		if len(c.names) > max(limit, len(live)) {
			t.Fatalf("decision %d: %d names kept, %d live, limit %d", i, len(c.names), len(live), limit)
		}
		for w, n := range live {
			if n--; n == 0 {
				delete(live, w)
			} else {
				live[w] = n
			}
			if c.names[w] == nil {
				t.Fatalf("decision %d: live %s dropped", i, w)
			}
		}
		sums := map[killswitch.Action]uint64{}
		now := map[DecisionCount]uint64{}
		for _, d := range c.counts() {
			sums[d.Action] += d.Count
			k := DecisionCount{Action: d.Action, Workload: d.Workload}
			if d.Workload != "" && c.names[d.Workload] == nil {
				t.Fatalf("decision %d: %s counted by name but not kept", i, d.Workload)
			}
			now[k] = d.Count
		}
		for k, v := range prev {
			// A kept name's counts and the folded counts never go down (a name is dropped by prune, after add: one
			// in both checks was kept in between).
			if n, ok := now[k]; ok && n < v {
				t.Fatalf("decision %d: %+v went from %d to %d", i, k, v, n)
			}
		}
		for _, a := range actions {
			if sums[a] != taken[a] {
				t.Fatalf("decision %d: %s counts sum to %d, %d taken", i, a, sums[a], taken[a])
			}
		}
		prev = now
	}
	if maxLive <= limit || len(c.folded) != len(actions) {
		t.Fatalf("at most %d live at once, %d folded actions: the test did not exercise the bound", maxLive, len(c.folded))
	}
}
