package ramp

import (
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
