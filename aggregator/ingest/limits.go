package ingest

import (
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
)

// Per-stream limits on workload names an agent stream may introduce (finding 2: one credential once grew the
// aggregator's memory without bound with 10,000 new names per report). Names over a limit are folded into the
// node's Unattributed bucket: their traffic still counts, their names cost nothing.
const (
	MaxNewNamesPerReport = 1_000
	MaxNewNamesPerMinute = 2_000
	// MaxStreamNames bounds the names one stream is remembered to have sent; a real node runs a few hundred.
	MaxStreamNames = 5_000
)

// Limiter applies the per-stream name limits. One per agent stream; not safe for concurrent use.
type Limiter struct {
	now         func() time.Time
	seen        map[string]struct{}
	minuteStart time.Time
	newInMinute int
}

// NewLimiter returns a limiter for one stream. The minute is measured on now (nil: time.Now), the aggregator's clock:
// a report's own timestamp is the agent's word, and a stream that jumped it back or ahead would reset its minute.
func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, seen: map[string]struct{}{}}
}

// Apply folds the names r may not introduce into Unattributed and returns how many it folded.
func (l *Limiter) Apply(r *engine.Report) int {
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
