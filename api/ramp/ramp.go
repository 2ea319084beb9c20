package ramp

import (
	"errors"
	"fmt"
	"hash/fnv"
	"time"
)

// Bounds on a ramp (directives are input to the agent; flags are input to the aggregator).
const (
	MaxSteps    = 1000
	MaxDuration = 24 * time.Hour
	MaxJitter   = time.Hour
)

// ErrBadRamp is returned (wrapped) by Validate.
var ErrBadRamp = errors.New("bad release ramp")

// Schedule is one release ramp.
type Schedule struct {
	Start    time.Time
	Duration time.Duration
	Steps    uint
	Jitter   time.Duration
}

// Validate checks the bounds: durations non-negative, steps <= MaxSteps, duration <= MaxDuration, jitter <= MaxJitter.
func (s Schedule) Validate() error {
	switch {
	case s.Duration < 0 || s.Duration > MaxDuration:
		return fmt.Errorf("%w: duration %s not in [0, %s]", ErrBadRamp, s.Duration, MaxDuration)
	case s.Jitter < 0 || s.Jitter > MaxJitter:
		return fmt.Errorf("%w: jitter %s not in [0, %s]", ErrBadRamp, s.Jitter, MaxJitter)
	case s.Steps > MaxSteps:
		return fmt.Errorf("%w: %d steps, at most %d", ErrBadRamp, s.Steps, MaxSteps)
	}
	return nil
}

// hash is splitmix64 of the FNV-1a 64 hash of the name: FNV alone leaves the high bits of names that differ only in
// their last characters (node-1, node-2) nearly equal.
func hash(node string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	return splitmix(h.Sum64())
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Position is the node's stable place in [0, 1).
func Position(node string) float64 { return float64(hash(node)>>11) / (1 << 53) }

// clamp keeps a schedule inside the bounds, so the arithmetic below cannot overflow whatever a caller passes.
func (s Schedule) clamp() Schedule {
	s.Duration = min(max(s.Duration, 0), MaxDuration)
	s.Jitter = min(max(s.Jitter, 0), MaxJitter)
	s.Steps = min(s.Steps, MaxSteps)
	if s.Steps <= 1 || s.Duration == 0 {
		s.Steps, s.Duration = 1, 0
	}
	return s
}

// Step returns the step (0..steps-1) that releases the node.
func (s Schedule) Step(node string) uint {
	s = s.clamp()
	k := uint((hash(node) >> 11) * uint64(s.Steps) >> 53)
	return min(k, s.Steps-1)
}

// stepStart is when step k starts, relative to Start.
func (s Schedule) stepStart(k uint) time.Duration {
	return time.Duration(int64(s.Duration) * int64(k) / int64(s.Steps))
}

// jitter is the node's own jitter.
func (s Schedule) jitter(node string) time.Duration {
	if s.Jitter <= 0 {
		return 0
	}
	return time.Duration(splitmix(hash(node)) % uint64(s.Jitter))
}

// Offset is how long after Start the node re-admits the workload.
func (s Schedule) Offset(node string) time.Duration {
	s = s.clamp()
	return s.stepStart(s.Step(node)) + s.jitter(node)
}

// ReleaseTime is when the node re-admits the workload.
func (s Schedule) ReleaseTime(node string) time.Time { return s.Start.Add(s.Offset(node)) }

// Released reports whether the node has re-admitted the workload at t.
func (s Schedule) Released(node string, t time.Time) bool { return !t.Before(s.ReleaseTime(node)) }

// Fraction is the share of the fleet whose step has started at t (before jitter): 0 before Start, (k+1)/steps once
// step k has started, 1 from the last step on.
func (s Schedule) Fraction(t time.Time) float64 {
	s = s.clamp()
	el := t.Sub(s.Start)
	if el < 0 {
		return 0
	}
	k := uint(0)
	for k+1 < s.Steps && s.stepStart(k+1) <= el {
		k++
	}
	return float64(k+1) / float64(s.Steps)
}

// End is when every node has re-admitted the workload.
func (s Schedule) End() time.Time {
	c := s.clamp()
	return s.Start.Add(c.stepStart(c.Steps-1) + c.Jitter)
}

// Offset returns how long after the release was issued the given node unblocks (Schedule.Offset without a start).
func Offset(node string, duration time.Duration, steps uint, jitter time.Duration) time.Duration {
	return Schedule{Duration: duration, Steps: steps, Jitter: jitter}.Offset(node)
}
