package enforce

import (
	"errors"
	"fmt"
	"time"
)

// Action is what a Directive asks for.
type Action string

// Actions.
const (
	ActionBlock   Action = "block"
	ActionRelease Action = "release"
)

// Directive is one kill-switch instruction for a workload on this node.
type Directive struct {
	Action Action
	// Workload is `Kind/namespace/name` (docs/interfaces.md).
	Workload string
	// TTL (block): how long the block holds unless renewed by another block directive; 0 = Config.DefaultTTL.
	// Capped at Config.MaxTTL.
	TTL time.Duration
	// Ramp (release): how the workload's pods are re-admitted; the zero Ramp releases all at once.
	Ramp Ramp
	// Reason is logged.
	Reason string
}

// Ramp spreads a release: the workload's blocked pods are shuffled and split into Steps batches; batch k
// (k = 0..Steps-1) is re-admitted at k*Duration/Steps after the directive, each pod plus a uniform random delay in
// [0, Jitter). New pods of a releasing workload are not blocked.
type Ramp struct {
	Duration time.Duration
	Steps    int
	Jitter   time.Duration
}

// ErrProtected is returned (wrapped) for a block directive naming a protected workload.
var ErrProtected = errors.New("workload is protected")

func (d Directive) validate() error {
	if d.Workload == "" {
		return errors.New("directive without workload")
	}
	switch d.Action {
	case ActionBlock:
		if d.TTL < 0 {
			return fmt.Errorf("negative ttl %s", d.TTL)
		}
	case ActionRelease:
		if d.Ramp.Duration < 0 || d.Ramp.Steps < 0 || d.Ramp.Jitter < 0 {
			return fmt.Errorf("bad ramp %+v", d.Ramp)
		}
	default:
		return fmt.Errorf("unknown action %q", d.Action)
	}
	return nil
}

// schedule returns the release offset of each of n pods (already shuffled), before jitter.
func (r Ramp) schedule(n int) []time.Duration {
	out := make([]time.Duration, n)
	steps := max(r.Steps, 1)
	if r.Duration <= 0 {
		return out
	}
	for i := range n {
		batch := i * steps / n
		out[i] = time.Duration(int64(r.Duration) * int64(batch) / int64(steps))
	}
	return out
}
