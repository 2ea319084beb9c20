package metrics

import (
	"slices"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// Other is the workload label the folded workloads' series are exported under. Workload names are Kind/namespace/name,
// so no workload is called that (the agent's per-node health series use the same label).
const Other = "other"

// folded is the aggregate of the workloads a scrape does not export under their own name.
type folded struct {
	n int
	// as is the aggregate as one workload named Other: the sum of the rates, the most synchronized nodes and the
	// highest projected load of any folded workload; state observe (a folded workload is never pinned).
	as engine.WorkloadSummary
}

func (f *folded) add(w *engine.WorkloadSummary) {
	if f.n == 0 {
		f.as.Workload = Other
	}
	f.n++
	f.as.Now.Requests += w.Now.Requests
	f.as.Now.RxBytes += w.Now.RxBytes
	f.as.Now.Connects += w.Now.Connects
	f.as.SyncNodes = max(f.as.SyncNodes, w.SyncNodes)
	f.as.ProjectedRatio = max(f.as.ProjectedRatio, w.ProjectedRatio)
}

// pinned reports whether a workload is exported whatever its rank: a kill-switch state other than observe (alert,
// trip, releasing, released: the alert rules and the state timeline read these) or a held release.
func pinned(w *engine.WorkloadSummary) bool { return w.State != killswitch.Observe || w.Held != "" }

// loadAxes rank workloads by current API load: fleet requests, response bytes and connects per second (the three
// fleet-rate families; the dashboards show the top ten of each).
var loadAxes = []func(w *engine.WorkloadSummary) float64{
	func(w *engine.WorkloadSummary) float64 { return w.Now.Requests },
	func(w *engine.WorkloadSummary) float64 { return w.Now.RxBytes },
	func(w *engine.WorkloadSummary) float64 { return w.Now.Connects },
}

// bound picks the workloads exported under their own name: every pinned one, then up to k in all, taking the busiest
// on each load axis in turn (first on requests, first on bytes, first on connects, second on requests, ...), so each
// axis's top k/3 (of the unpinned workloads) is always in. named is in ws's order; the rest are summed into rest.
// k <= 0 names every workload. Cost O(n log k): one bounded heap per axis, no sort of all n workloads.
func bound(ws []engine.WorkloadSummary, k int) (named []int, rest folded) {
	if k <= 0 || len(ws) <= k {
		named = make([]int, len(ws))
		for i := range ws {
			named[i] = i
		}
		return named, rest
	}
	keep := make([]bool, len(ws))
	kept := 0
	for i := range ws {
		if pinned(&ws[i]) {
			keep[i] = true
			kept++
		}
	}
	if slots := k - kept; slots > 0 {
		tops := make([][]int, len(loadAxes))
		for a, load := range loadAxes {
			tops[a] = topK(ws, keep, slots, load)
		}
	fill:
		for r := range slots {
			for _, top := range tops {
				if r < len(top) && !keep[top[r]] {
					keep[top[r]] = true
					if slots--; slots == 0 {
						break fill
					}
				}
			}
		}
	}
	named = make([]int, 0, min(len(ws), max(k, kept)))
	for i := range ws {
		if keep[i] {
			named = append(named, i)
		} else {
			rest.add(&ws[i])
		}
	}
	return named, rest
}

// topK returns the indexes of the k workloads not in skip with the highest load, highest first (ties: by name), from
// a min-heap of k candidates whose root is the weakest kept.
func topK(ws []engine.WorkloadSummary, skip []bool, k int, load func(*engine.WorkloadSummary) float64) []int {
	// above: a ranks before b.
	above := func(a, b int) bool {
		la, lb := load(&ws[a]), load(&ws[b])
		if la != lb {
			return la > lb
		}
		return ws[a].Workload < ws[b].Workload
	}
	h := make([]int, 0, k)
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && above(h[c], h[c+1]) {
				c++
			}
			if !above(h[i], h[c]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := range ws {
		switch {
		case skip[i]:
		case len(h) < k:
			h = append(h, i)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !above(h[p], h[j]) {
					break
				}
				h[j], h[p] = h[p], h[j]
				j = p
			}
		case above(i, h[0]):
			h[0] = i
			down(0)
		}
	}
	slices.SortFunc(h, func(a, b int) int {
		switch {
		case above(a, b):
			return -1
		case above(b, a):
			return 1
		}
		return 0
	})
	return h
}
