package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
fanout_pod_api_requests_total{namespace="default",pod="web-7d9f8-abcde",uid="",workload="Deployment/default/web"} 30
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

// Finding 3: two pods sharing namespace and name (a restarted StatefulSet pod, old and new UID) must not break the
// scrape: /metrics answers 200 and the kill-switch metrics registered next to the collector stay visible.
func TestSameNamePodsDoNotBreakScrape(t *testing.T) {
	st := State{Pods: []PodCounters{
		{Namespace: "db", Pod: "pg-0", Workload: "StatefulSet/db/pg", Connects: 1, Requests: 5},
		{Namespace: "db", Pod: "pg-0", Workload: "StatefulSet/db/pg", Connects: 2, Requests: 7},
		{UID: "u-old", Namespace: "db", Pod: "pg-0", Workload: "StatefulSet/db/pg", Connects: 3},
		{UID: "u-new", Namespace: "db", Pod: "pg-0", Workload: "StatefulSet/db/pg", Connects: 4},
	}}
	reg := prometheus.NewPedanticRegistry()
	killSwitch := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fanout_agent_blocks_active", Help: "x"}, []string{"workload"})
	killSwitch.WithLabelValues("StatefulSet/db/pg").Set(1)
	reg.MustRegister(New(SourceFunc(func(context.Context) (State, error) { return st, nil }), nil), killSwitch)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{`fanout_agent_blocks_active{workload="StatefulSet/db/pg"} 1`,
		`fanout_pod_api_connects_total{namespace="db",pod="pg-0",uid="",workload="StatefulSet/db/pg"} 3`,
		`fanout_pod_api_connects_total{namespace="db",pod="pg-0",uid="u-old",workload="StatefulSet/db/pg"} 3`,
		`fanout_pod_api_connects_total{namespace="db",pod="pg-0",uid="u-new",workload="StatefulSet/db/pg"} 4`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %s:\n%s", want, body)
		}
	}
}
