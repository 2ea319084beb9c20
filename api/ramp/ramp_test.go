package ramp

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestOffsetSpreadsNodesOverSteps(t *testing.T) {
	const n = 4000
	perStep := map[time.Duration]int{}
	for i := 0; i < n; i++ {
		off := Offset(fmt.Sprintf("node-%d", i), 4*time.Minute, 4, 0)
		if off < 0 || off >= 4*time.Minute {
			t.Fatalf("offset %s out of range", off)
		}
		perStep[off]++
	}
	if len(perStep) != 4 {
		t.Fatalf("want 4 steps, got %v", perStep)
	}
	for s, c := range perStep {
		if c < n/4-n/10 || c > n/4+n/10 {
			t.Errorf("step %s has %d nodes, want about %d", s, c, n/4)
		}
	}
	if first, again := Offset("a", time.Minute, 4, 5*time.Second), Offset("a", time.Minute, 4, 5*time.Second); first != again {
		t.Fatal("not deterministic")
	}
	if got := Offset("a", time.Minute, 1, 0); got != 0 {
		t.Fatalf("one step: got %s, want 0", got)
	}
}

// The contract is bit for bit: these values pin it, so a change to the hash, the step rule or the jitter (which would
// make agents of two versions, or replay and the fleet, disagree) fails here.
func TestContractGolden(t *testing.T) {
	s := Schedule{Duration: 2 * time.Minute, Steps: 4, Jitter: 5 * time.Second}
	got := ""
	for _, n := range []string{"node-0", "node-1", "node-2", "ip-10-0-0-1.ec2.internal", ""} {
		got += fmt.Sprintf("%s:%d:%d ", n, s.Step(n), s.Offset(n))
	}
	const want = "node-0:1:31986050026 node-1:2:60532700049 node-2:2:64670696107 ip-10-0-0-1.ec2.internal:3:94598069339 :3:92222971125 "
	if got != want {
		t.Fatalf("placement changed:\n got %q\nwant %q", got, want)
	}
}

func TestReleasedIsMonotoneAndMatchesFraction(t *testing.T) {
	start := time.Unix(1000, 0)
	s := Schedule{Start: start, Duration: 2 * time.Minute, Steps: 4}
	const n = 2000
	for sec := -1; sec <= 130; sec++ {
		at := start.Add(time.Duration(sec) * time.Second)
		rel := 0
		for i := 0; i < n; i++ {
			node := fmt.Sprintf("n%d", i)
			r := s.Released(node, at)
			if r {
				rel++
			}
			// Without jitter a node is released exactly when its position is below the fraction.
			if r != (Position(node) < s.Fraction(at)) {
				t.Fatalf("t=%d %s: released %v, position %.3f, fraction %.3f", sec, node, r, Position(node), s.Fraction(at))
			}
			if r && !s.Released(node, at.Add(time.Second)) {
				t.Fatalf("%s released at %d, not at %d", node, sec, sec+1)
			}
		}
		f := s.Fraction(at)
		if d := float64(rel)/n - f; d > 0.05 || d < -0.05 {
			t.Fatalf("t=%d: %d of %d released, fraction %.2f", sec, rel, n, f)
		}
	}
	if !s.End().Equal(start.Add(90 * time.Second)) {
		t.Fatalf("End = %s", s.End())
	}
}

// A DaemonSet has one pod per node: with the default flags (2m, 4 steps, 5s jitter) the nodes re-admit over the ramp,
// not within the jitter.
func TestDaemonSetComesBackOverTheRamp(t *testing.T) {
	s := Schedule{Duration: 2 * time.Minute, Steps: 4, Jitter: 5 * time.Second}
	var maxOff time.Duration
	firstWindow := 0
	const n = 1000
	for i := 0; i < n; i++ {
		off := s.Offset(fmt.Sprintf("node-%d", i))
		maxOff = max(maxOff, off)
		if off < s.Jitter {
			firstWindow++
		}
	}
	if maxOff < 90*time.Second {
		t.Fatalf("last node back at %s, want >= 90s", maxOff)
	}
	if firstWindow > n/3 {
		t.Fatalf("%d of %d nodes back within the jitter", firstWindow, n)
	}
}

func TestJitterBoundedAndBadInputsClamped(t *testing.T) {
	s := Schedule{Duration: time.Minute, Steps: 3, Jitter: 7 * time.Second}
	for i := 0; i < 500; i++ {
		n := fmt.Sprintf("x%d", i)
		j := s.Offset(n) - s.stepStart(s.Step(n))
		if j < 0 || j >= 7*time.Second {
			t.Fatalf("jitter %s", j)
		}
	}
	for _, b := range []Schedule{{Duration: -1}, {Jitter: -1}, {Steps: MaxSteps + 1}, {Duration: MaxDuration + 1}, {Jitter: MaxJitter + 1}} {
		if !errors.Is(b.Validate(), ErrBadRamp) {
			t.Errorf("%+v accepted", b)
		}
		if off := b.Offset("n"); off < 0 || off > MaxDuration+MaxJitter {
			t.Errorf("%+v: offset %s", b, off)
		}
	}
	huge := Schedule{Duration: 1<<63 - 1, Steps: ^uint(0), Jitter: 1<<63 - 1}
	if off := huge.Offset("n"); off < 0 || off > MaxDuration+MaxJitter {
		t.Errorf("huge: offset %s", off)
	}
	if (Schedule{Duration: time.Minute, Steps: 4}).Validate() != nil {
		t.Error("good schedule rejected")
	}
}

func FuzzOffset(f *testing.F) {
	f.Add("node-1", int64(time.Minute), uint(4), int64(time.Second))
	f.Fuzz(func(t *testing.T, node string, d int64, steps uint, j int64) {
		s := Schedule{Duration: time.Duration(d), Steps: steps, Jitter: time.Duration(j)}
		off := s.Offset(node)
		c := s.clamp()
		if off < 0 || off > c.stepStart(c.Steps-1)+c.Jitter {
			t.Fatalf("offset %s outside [0, %s]", off, c.stepStart(c.Steps-1)+c.Jitter)
		}
		if s.Step(node) >= c.Steps {
			t.Fatalf("step %d of %d", s.Step(node), c.Steps)
		}
	})
}
