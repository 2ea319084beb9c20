package metrics

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/server"
)

// Every aggregator metric named in docs/interfaces.md is exposed.
func TestInterfaceMetricNames(t *testing.T) {
	cfg := engine.DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 100
	eng := engine.New(cfg, nil)
	eng.Start(10)
	if err := eng.Ingest(&engine.Report{Node: "n1", Second: 10, Sequence: 1, Workloads: []engine.WorkloadReport{
		{Workload: "Deployment/a/b", Pods: 1, Counters: fleet.Counters{Requests: 5}}}}); err != nil {
		t.Fatal(err)
	}
	eng.CloseThrough(10)
	if _, err := eng.Manual(11, true, "Deployment/a/b", "test", 0); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(New(eng, DefaultConfig())); err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(server.Config{}, eng, reg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, n := range []string{"fanout_aggregator_nodes_reporting", "fanout_aggregator_reports_total", "fanout_aggregator_reports_rejected_total",
		"fanout_workload_fleet_requests_per_second", "fanout_workload_fleet_rx_bytes_per_second", "fanout_workload_fleet_connects_per_second",
		"fanout_workload_synchronized_nodes", "fanout_workload_projected_load_ratio", "fanout_workload_state", "fanout_decisions_total",
		"fanout_apiserver_utilization_ratio"} {
		if !got[n] {
			t.Errorf("missing %s", n)
		}
	}
}
