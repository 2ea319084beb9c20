package enforce

import (
	"errors"
	"fmt"
	"time"

	"github.com/fanoutdev/fanout/api/ramp"
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
	// Ramp (release): when this node re-admits the workload; the zero Ramp is Config.DefaultRamp.
	Ramp Ramp
	// Reason is logged.
	Reason string
	// Epoch identifies the trip (0 = unknown). A block of an epoch at or below the last released one is stale and
	// ignored; a release of an epoch below the block in force is stale too.
	Epoch uint64
	// Issued (release) is when the fleet-wide ramp started; zero = now.
	Issued time.Time
}

// Ramp spreads a release over the fleet (api/ramp): this node re-admits all its pods of the workload at its own
// place in the ramp, a stable hash of the node name against the step's fraction, plus the node's jitter. New pods of
// a releasing workload are not blocked. The zero Ramp means Config.DefaultRamp: every release ramps.
type Ramp struct {
	Duration time.Duration
	Steps    int
	Jitter   time.Duration
}

// ErrProtected is returned (wrapped) for a block directive naming a protected workload.
var ErrProtected = errors.New("workload is protected")

// ErrStale is returned (wrapped) for a directive older than what was applied (a block of a released epoch, a release
// of an epoch older than the block in force).
var ErrStale = errors.New("stale directive")

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
		if d.Ramp.Steps < 0 {
			return fmt.Errorf("bad ramp %+v", d.Ramp)
		}
		if err := d.Ramp.schedule(time.Time{}).Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown action %q", d.Action)
	}
	return nil
}

func (r Ramp) schedule(start time.Time) ramp.Schedule {
	return ramp.Schedule{Start: start, Duration: r.Duration, Steps: uint(max(r.Steps, 0)), Jitter: r.Jitter}
}
