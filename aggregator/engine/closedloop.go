package engine

import (
	"sort"
	"strconv"
	"strings"

	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// BlockedReport is one block a node says it enforces (api.BlockedEntry).
type BlockedReport struct {
	Workload   string
	Epoch      uint64
	Releasing  bool
	BreakGlass bool
}

// RefusalReport is one directive a node refuses (api.Refusal).
type RefusalReport struct {
	Workload string
	Epoch    uint64
	Reason   string
}

// Closed-loop bounds: coverage is kept for tripped workloads only, and forgets nodes silent this long.
const (
	coverageForget = 60  // seconds
	refuseAfter    = 3   // seconds after a trip with refusals and no node enforcing: the trip is withdrawn
	maxLaggards    = 20  // names listed in Status
	maxRefusals    = 20  // node refusals listed in Status
	maxReasonLen   = 128 // bytes of a refusal reason kept
)

type nodeCover struct {
	lastSec  int64
	running  bool // the node reported the workload's pods recently
	enforced bool // the node reports the block at the trip's epoch
	refusal  string
}

// coverage is what the fleet does about one trip.
type coverage struct {
	epoch uint64
	nodes map[string]*nodeCover
}

// Coverage is one trip's enforcement across the fleet.
type Coverage struct {
	Epoch     uint64
	Running   int // nodes running the workload (reporting its pods, or reporting the block)
	Enforcing int // of those, nodes reporting the block at this epoch
	Laggards  []string
	Refusals  []NodeRefusal
}

// NodeRefusal is one node's refusal of a trip.
type NodeRefusal struct {
	Node, Reason string
}

// Ratio is Enforcing/Running (1 when no node runs the workload).
func (c Coverage) Ratio() float64 {
	if c.Running == 0 {
		return 1
	}
	return float64(c.Enforcing) / float64(c.Running)
}

// BeginSync holds the switch unsynced until second until: no second closes into the kill switch (nothing trips or
// releases), the directive set says state_synced=false, and blocks the agents report are adopted.
func (e *Engine) BeginSync(until int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.syncUntil = until
	e.unsynced = true
}

// Synced reports whether the engine has rebuilt its trip state (see BeginSync).
func (e *Engine) Synced() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.unsynced
}

// Snapshot returns the kill switch's trips (for the state file).
func (e *Engine) Snapshot() []killswitch.Saved {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sw.Snapshot()
}

// Restore puts saved trips back; call before the first second closes.
func (e *Engine) Restore(saved []killswitch.Saved) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.sw.Restore(saved)
	e.syncFreeze()
	return n
}

// closedLoop takes a node report's blocks and refusals (under e.mu).
func (e *Engine) closedLoop(r *Report) {
	if e.unsynced {
		adopted := false
		for _, b := range r.Blocked {
			if b.BreakGlass {
				continue
			}
			if d, ok := e.sw.Adopt(r.Second, b.Workload, b.Epoch, b.Releasing); ok {
				e.record(d)
				e.syncFreeze()
				adopted = true
			}
		}
		if adopted {
			e.pruneDecisions()
		}
	}
	tripped := e.sw.Blocking()
	if len(tripped) == 0 {
		if len(e.cover) > 0 {
			e.cover = map[string]*coverage{}
		}
		return
	}
	running := make(map[string]bool, len(r.Workloads))
	for i := range r.Workloads {
		if r.Workloads[i].Pods > 0 {
			running[r.Workloads[i].Workload] = true
		}
	}
	for _, w := range tripped {
		_, _, epoch := e.sw.StateOf(w)
		c := e.cover[w]
		if c == nil || c.epoch != epoch {
			c = &coverage{epoch: epoch, nodes: map[string]*nodeCover{}}
			e.cover[w] = c
		}
		nc := c.nodes[r.Node]
		enforced, refusal := false, ""
		for _, b := range r.Blocked {
			if b.Workload == w && b.Epoch == epoch && !b.BreakGlass {
				enforced = true
			}
		}
		for _, f := range r.Refused {
			if f.Workload == w && f.Epoch == epoch {
				refusal = f.Reason
			}
		}
		if !enforced && refusal == "" && !running[w] && nc == nil {
			continue
		}
		if nc == nil {
			nc = &nodeCover{}
			c.nodes[r.Node] = nc
		}
		nc.lastSec = r.Second
		nc.running = nc.running || running[w] || enforced
		nc.enforced, nc.refusal = enforced, refusal
	}
}

// stepClosedLoop runs after each closed second: drops coverage of trips that ended, forgets silent nodes and
// withdraws trips the fleet refuses.
func (e *Engine) stepClosedLoop(sec int64) []killswitch.Decision {
	if e.unsynced && sec >= e.syncUntil {
		e.unsynced = false
	}
	tripped := map[string]bool{}
	for _, w := range e.sw.Blocking() {
		tripped[w] = true
	}
	var out []killswitch.Decision
	for w, c := range e.cover {
		if !tripped[w] {
			delete(e.cover, w)
			continue
		}
		for n, nc := range c.nodes {
			if sec-nc.lastSec > coverageForget {
				delete(c.nodes, n)
			}
		}
		cv := c.summary()
		if len(cv.Refusals) == 0 || cv.Enforcing > 0 || sec-int64(c.epoch) < refuseAfter {
			continue
		}
		reasons := map[string]bool{}
		for _, f := range cv.Refusals {
			reasons[f.Reason] = true
		}
		rs := make([]string, 0, len(reasons))
		for r := range reasons {
			rs = append(rs, r)
		}
		sort.Strings(rs)
		if d, ok := e.sw.Refuse(sec, w, c.epoch, strings.Join(rs, ", ")+" on "+strconv.Itoa(len(cv.Refusals))+" nodes, enforced on none"); ok {
			e.record(d)
			out = append(out, d)
			delete(e.cover, w)
		}
	}
	if len(out) > 0 {
		e.syncFreeze()
	}
	return out
}

func (c *coverage) summary() Coverage {
	cv := Coverage{Epoch: c.epoch}
	names := make([]string, 0, len(c.nodes))
	for n := range c.nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		nc := c.nodes[n]
		if nc.refusal != "" {
			if len(cv.Refusals) < maxRefusals {
				cv.Refusals = append(cv.Refusals, NodeRefusal{Node: n, Reason: nc.refusal})
			}
		}
		if !nc.running && nc.refusal == "" {
			continue
		}
		cv.Running++
		if nc.enforced {
			cv.Enforcing++
		} else if len(cv.Laggards) < maxLaggards {
			cv.Laggards = append(cv.Laggards, n)
		}
	}
	return cv
}

// CoverageOf returns the enforcement coverage of every tripped workload, by name.
func (e *Engine) CoverageOf() map[string]Coverage {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]Coverage, len(e.cover))
	for _, w := range e.sw.Blocking() {
		if c := e.cover[w]; c != nil {
			out[w] = c.summary()
		} else {
			_, _, ep := e.sw.StateOf(w)
			out[w] = Coverage{Epoch: ep}
		}
	}
	return out
}
