package ingest

import (
	"sync"
	"time"
)

// sweepEvery is how often at most the registry looks for limiters to forget.
const sweepEvery = time.Second

// Limiters holds one Limiter per node, shared by the node's concurrent and successive streams: a stream that
// reconnects finds its node's budget as it left it. A node's limiter is forgotten only once no stream of the node is
// open and its minute has passed, so the registry holds the nodes with an open stream plus those whose last stream
// closed within about a minute. Safe for concurrent use.
type Limiters struct {
	now func() time.Time

	mu        sync.Mutex
	byNode    map[string]*Limiter
	lastSweep time.Time
}

// NewLimiters returns an empty registry whose limiters measure their minute on now (nil: time.Now).
func NewLimiters(now func() time.Time) *Limiters {
	if now == nil {
		now = time.Now
	}
	return &Limiters{now: now, byNode: map[string]*Limiter{}}
}

// Open returns node's limiter for a new stream of the node; pass it to Close when the stream ends.
func (ls *Limiters) Open(node string) *Limiter {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.sweep()
	l, ok := ls.byNode[node]
	if !ok {
		l = NewLimiter(ls.now)
		l.node = node
		ls.byNode[node] = l
	}
	l.streams++
	return l
}

// Close ends one stream's use of l (from Open). The limiter is forgotten at once if that leaves it idle, else by a
// later sweep.
func (ls *Limiters) Close(l *Limiter) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l.streams--
	if ls.byNode[l.node] == l && l.idle(ls.now()) {
		delete(ls.byNode, l.node)
	}
	ls.sweep()
}

// Len returns how many nodes' limiters are held.
func (ls *Limiters) Len() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.byNode)
}

// sweep forgets idle limiters, at most once per sweepEvery. Call with ls.mu held.
func (ls *Limiters) sweep() {
	t := ls.now()
	if d := t.Sub(ls.lastSweep); d >= 0 && d < sweepEvery {
		return
	}
	ls.lastSweep = t
	for node, l := range ls.byNode {
		if l.idle(t) {
			delete(ls.byNode, node)
		}
	}
}
