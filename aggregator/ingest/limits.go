package ingest

import (
	"sync"
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
)

// Per-node limits on workload names an agent may introduce (finding 2: one credential once grew the aggregator's
// memory without bound with 10,000 new names per report). Names over a limit are folded into the node's Unattributed
// bucket: their traffic still counts, their names cost nothing. The limits belong to the node, not to a stream: a
// node's concurrent and successive streams share them (see Limiters), so reconnecting gains nothing.
const (
	MaxNewNamesPerReport = 1_000
	MaxNewNamesPerMinute = 2_000
	// MaxStreamNames bounds the names one node is remembered to have sent; a real node runs a few hundred.
	MaxStreamNames = 5_000
)

// Limiter applies one node's name limits. Safe for concurrent use: a node's streams share it.
type Limiter struct {
	now  func() time.Time
	node string

	mu          sync.Mutex
	seen        map[string]struct{}
	minuteStart time.Time
	newInMinute int
	streams     int // open streams using it (guarded by the registry's mutex, not mu)
}

// NewLimiter returns a limiter of its own (Limiters hands out one per node). The minute is measured on now (nil:
// time.Now), the aggregator's clock: a report's own timestamp is the agent's word, and a stream that jumped it back or
// ahead would reset its minute.
func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, seen: map[string]struct{}{}}
}

// Apply folds the names r may not introduce into Unattributed and returns how many it folded.
func (l *Limiter) Apply(r *engine.Report) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.now(); t.Sub(l.minuteStart) >= time.Minute || t.Before(l.minuteStart) {
		l.minuteStart, l.newInMinute = t, 0
	}
	folded, newHere := 0, 0
	for i := range r.Workloads {
		w := &r.Workloads[i]
		if w.Workload == Unattributed {
			continue
		}
		if _, ok := l.seen[w.Workload]; ok {
			continue
		}
		if newHere >= MaxNewNamesPerReport || l.newInMinute >= MaxNewNamesPerMinute || len(l.seen) >= MaxStreamNames {
			w.Workload = Unattributed
			folded++
			continue
		}
		newHere++
		l.newInMinute++
		l.seen[w.Workload] = struct{}{}
	}
	if folded > 0 {
		merge(r)
	}
	return folded
}

// idle reports whether the limiter may be forgotten at t: no stream uses it and its minute has passed, so a fresh
// limiter would grant the node nothing this one would not. Call with the registry's mutex held.
func (l *Limiter) idle(t time.Time) bool {
	if l.streams > 0 {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return t.Sub(l.minuteStart) >= time.Minute || t.Before(l.minuteStart)
}

// merge sums entries of the same workload (after folding) into one.
func merge(r *engine.Report) {
	at := make(map[string]int, len(r.Workloads))
	out := r.Workloads[:0]
	for _, w := range r.Workloads {
		if i, ok := at[w.Workload]; ok {
			o := &out[i]
			o.Counters.Connects += w.Counters.Connects
			o.Counters.Requests += w.Counters.Requests
			o.Counters.TxBytes += w.Counters.TxBytes
			o.Counters.RxBytes += w.Counters.RxBytes
			o.Pods += w.Pods
			continue
		}
		at[w.Workload] = len(out)
		out = append(out, w)
	}
	r.Workloads = out
}
