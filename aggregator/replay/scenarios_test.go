package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/scenario"
)

// TestScenarios replays every scenario in scenarios/ and checks its sidecar expectation: which workloads trip, how
// early, with what lead time before the projected collapse, and that nothing else trips.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, ".expect.yaml") {
			continue
		}
		n++
		for _, mode := range []string{CapacityLearned, CapacityFlag} {
			t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml")+"/"+mode, func(t *testing.T) {
				s := mustScenario(t, f)
				data, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".expect.yaml")
				if err != nil {
					t.Fatalf("every scenario needs an expectation sidecar: %v", err)
				}
				exp, err := DecodeExpectation(data)
				if err != nil {
					t.Fatal(err)
				}
				var lines []Line
				start := time.Now()
				sum, err := Run(context.Background(), s, Options{Config: engine.DefaultConfig(), CapacitySource: mode}, func(l Line) { lines = append(lines, l) })
				if err != nil {
					t.Fatal(err)
				}
				if sum.CapacitySource != mode {
					t.Fatalf("summary capacity_source %q, want %q", sum.CapacitySource, mode)
				}
				t.Logf("%s [%s]: %d nodes x %ds replayed in %s; %d decisions, tripped %v, first trip %v, collapse %v, lead %v, peak %.2f (unmitigated %.2f); headroom %+v",
					s.Name, mode, s.Nodes, sum.DurationS, time.Since(start).Round(time.Millisecond), sum.Decisions, sum.Tripped,
					deref(sum.FirstTripT), deref(sum.ProjectedCollapseT), deref(sum.LeadTimeS), sum.PeakUtilization, sum.PeakUtilizationUnmitigated, sum.Headroom)
				bad := exp.For(mode).Check(sum, lines)
				if len(bad) > 0 || testing.Verbose() {
					for _, l := range lines {
						t.Logf("t=%d %s %s: %s", l.T, l.Action, l.Workload, l.Reason)
					}
				}
				for _, b := range bad {
					t.Error(b)
				}
			})
		}
	}
	if n < 7 {
		t.Fatalf("want at least 7 scenarios, found %d", n)
	}
}

func deref(p *int64) any {
	if p == nil {
		return "none"
	}
	return *p
}

func mustScenario(t *testing.T, path string) *scenario.Scenario {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := scenario.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}
