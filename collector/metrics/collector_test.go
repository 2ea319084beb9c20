package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	st := State{
		Pods: []PodCounters{{Namespace: "default", Pod: "web-7d9f8-abcde", Workload: "Deployment/default/web",
			Connects: 2, Requests: 30, TxBytes: 4000, RxBytes: 90000, Packets: 77}},
		Workloads:      []WorkloadCounters{{Workload: "Deployment/default/web", Connects: 2, Requests: 30, TxBytes: 4000, RxBytes: 90000}},
		Maps:           []MapStats{{Name: "traffic_counters", Entries: 12, MaxEntries: 16384, FullTotal: 3}},
		UnknownCgroups: 1,
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(SourceFunc(func(context.Context) (State, error) { return st, nil }), nil), BuildInfo("v0.1.0"))

	want := `
# HELP fanout_pod_api_requests_total Egress payload segments to the API server (request-rate proxy), per pod.
# TYPE fanout_pod_api_requests_total counter
fanout_pod_api_requests_total{namespace="default",pod="web-7d9f8-abcde",workload="Deployment/default/web"} 30
# HELP fanout_workload_api_rx_bytes_total Payload bytes received from the API server on this node, per workload.
# TYPE fanout_workload_api_rx_bytes_total counter
fanout_workload_api_rx_bytes_total{workload="Deployment/default/web"} 90000
# HELP fanout_agent_map_full_total Updates that failed because a BPF map was full.
# TYPE fanout_agent_map_full_total counter
fanout_agent_map_full_total{map="traffic_counters"} 3
# HELP fanout_agent_map_max_entries Capacity of a BPF map.
# TYPE fanout_agent_map_max_entries gauge
fanout_agent_map_max_entries{map="traffic_counters"} 16384
# HELP fanout_agent_scrape_success 1 if the agent's traffic state was gathered, else 0.
# TYPE fanout_agent_scrape_success gauge
fanout_agent_scrape_success 1
# HELP fanout_agent_unknown_cgroups Counted cgroups that resolve to no pod and no systemd unit.
# TYPE fanout_agent_unknown_cgroups gauge
fanout_agent_unknown_cgroups 1
# HELP fanout_build_info fanout build information; always 1.
# TYPE fanout_build_info gauge
fanout_build_info{version="v0.1.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"fanout_pod_api_requests_total", "fanout_workload_api_rx_bytes_total", "fanout_agent_map_full_total",
		"fanout_agent_map_max_entries", "fanout_agent_scrape_success", "fanout_agent_unknown_cgroups",
		"fanout_build_info"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 5+4+3+1+2+1 {
		t.Fatalf("gathered %d series (err %v), want 16", n, err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

func TestCollectorSourceError(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(New(SourceFunc(func(context.Context) (State, error) { return State{}, errors.New("boom") }), nil))
	want := `
# HELP fanout_agent_scrape_success 1 if the agent's traffic state was gathered, else 0.
# TYPE fanout_agent_scrape_success gauge
fanout_agent_scrape_success 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "fanout_agent_scrape_success"); err != nil {
		t.Fatal(err)
	}
}
