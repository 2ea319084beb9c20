package metrics

import (
	"fmt"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
)

// fixtureNodes spreads the fixture's workloads over this many nodes.
const fixtureNodes = 8

// fixtureWorkload is the name of the fixture's i-th workload.
func fixtureWorkload(i int) string { return fmt.Sprintf("Deployment/ns-%d/app-%d", i%50, i) }

// fixtureCounters are workload i's rates of n: it ranks i-th by requests, its response bytes and connects rank in two
// other orders (so the three load rankings differ), and the last workload, n-1, is the quietest on every count.
func fixtureCounters(i, n int) fleet.Counters {
	if i == n-1 {
		return fleet.Counters{Requests: 1}
	}
	return fleet.Counters{Requests: float64(n - i), RxBytes: float64(1 + (i*7919)%(n-1)), Connects: float64(1 + (i*104729)%(n-1))}
}

// heldEngine returns an engine holding n workloads (fixtureCounters, each on one node) after one closed second,
// second 10.
func heldEngine(tb testing.TB, n int) *engine.Engine {
	tb.Helper()
	cfg := engine.DefaultConfig()
	cfg.Fleet.MaxWorkloads = n + 1
	eng := engine.New(cfg, nil)
	eng.Start(10)
	reports := make([]engine.Report, fixtureNodes)
	for i := range reports {
		reports[i] = engine.Report{Node: fmt.Sprintf("node-%d", i), Second: 10, Sequence: 1}
	}
	for i := range n {
		r := &reports[i%fixtureNodes]
		r.Workloads = append(r.Workloads, engine.WorkloadReport{Workload: fixtureWorkload(i), Pods: 1, Counters: fixtureCounters(i, n)})
	}
	for i := range reports {
		if err := eng.Ingest(&reports[i]); err != nil {
			tb.Fatal(err)
		}
	}
	eng.CloseThrough(10)
	if got := len(eng.Status().Workloads); got != n {
		tb.Fatalf("engine holds %d workloads, want %d", got, n)
	}
	return eng
}
