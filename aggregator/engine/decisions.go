package engine

import "github.com/fanoutdev/fanout/aggregator/killswitch"

// MaxDecisionWorkloads bounds the workloads whose decision counts are kept under their own name (the workload label
// of fanout_decisions_total). Every workload in a kill-switch state other than observe keeps its name beyond it.
const MaxDecisionWorkloads = 500

// DecisionCount is how many decisions of one action were taken on one workload since the engine started. Workload ""
// is the decisions on workloads whose names are no longer kept (see decisionCounts).
type DecisionCount struct {
	Action   killswitch.Action
	Workload string
	Count    uint64
}

// decisionActions are the actions counted per workload; any other action is counted under Workload "" only.
var decisionActions = [...]killswitch.Action{killswitch.ActionAlert, killswitch.ActionTrip, killswitch.ActionRelease}

func actionIndex(a killswitch.Action) int {
	for i, x := range decisionActions {
		if x == a {
			return i
		}
	}
	return -1
}

// decisionName is one workload's counts, a node of the recency list.
type decisionName struct {
	workload   string
	n          [len(decisionActions)]uint64
	prev, next *decisionName
}

// decisionCounts counts decisions per action and workload in bounded memory. A workload enters at its first decision;
// prune drops the least recently decided (or least recently found live) workloads in state observe until at most
// limit are kept, and adds their counts to the folded counts (Workload ""). So the sum of the counts of an action over
// every workload, folded included, never decreases: a dropped name's series disappears and the folded series grows by
// as much. A workload decided on again after it was dropped starts again from its new decision. Held: at most
// max(limit, workloads not in observe) names, plus those decided on since the last prune.
type decisionCounts struct {
	limit int
	names map[string]*decisionName
	// root.next is the most recently decided or found live, root.prev the least.
	root   decisionName
	folded map[killswitch.Action]uint64
}

func newDecisionCounts(limit int) *decisionCounts {
	c := &decisionCounts{limit: limit, names: map[string]*decisionName{}, folded: map[killswitch.Action]uint64{}}
	c.root.prev, c.root.next = &c.root, &c.root
	return c
}

func (c *decisionCounts) unlink(n *decisionName) {
	n.prev.next, n.next.prev = n.next, n.prev
	n.prev, n.next = nil, nil
}

func (c *decisionCounts) pushFront(n *decisionName) {
	n.prev, n.next = &c.root, c.root.next
	c.root.next.prev = n
	c.root.next = n
}

// add counts one decision.
func (c *decisionCounts) add(a killswitch.Action, workload string) {
	i := actionIndex(a)
	if i < 0 {
		c.folded[a]++
		return
	}
	n := c.names[workload]
	if n == nil {
		n = &decisionName{workload: workload}
		c.names[workload] = n
	} else {
		c.unlink(n)
	}
	c.pushFront(n)
	n.n[i]++
}

// prune folds the least recent workloads that live reports false for into the folded counts until at most limit
// names are kept. A live workload it meets is kept and counts as recent again. It visits each name at most once.
func (c *decisionCounts) prune(live func(workload string) bool) {
	for visits := len(c.names); len(c.names) > c.limit && visits > 0; visits-- {
		n := c.root.prev
		c.unlink(n)
		if live(n.workload) {
			c.pushFront(n)
			continue
		}
		delete(c.names, n.workload)
		for i, a := range decisionActions {
			if n.n[i] > 0 {
				c.folded[a] += n.n[i]
			}
		}
	}
}

// counts returns every non-zero count: the named workloads, most recent first, then the folded counts by action.
func (c *decisionCounts) counts() []DecisionCount {
	out := make([]DecisionCount, 0, len(c.names)+len(c.folded))
	for n := c.root.next; n != &c.root; n = n.next {
		for i, a := range decisionActions {
			if n.n[i] > 0 {
				out = append(out, DecisionCount{Action: a, Workload: n.workload, Count: n.n[i]})
			}
		}
	}
	for _, a := range decisionActions {
		if v := c.folded[a]; v > 0 {
			out = append(out, DecisionCount{Action: a, Count: v})
		}
	}
	for a, v := range c.folded {
		if actionIndex(a) < 0 && v > 0 {
			out = append(out, DecisionCount{Action: a, Count: v})
		}
	}
	return out
}
