package dashboards

import (
	"context"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// fakeFleet is an in-process exporter serving every documented fanout metric name (docs/interfaces.md) with plausible
// label values, split into an agent registry and an aggregator registry, with counters that keep growing.
type fakeFleet struct {
	agent, aggregator *prometheus.Registry
	counters          []counterSeries
	names             map[string]bool
}

var testWorkloads = []string{"DaemonSet/monitoring/telemetry-agent", "Deployment/default/web"}

func newFakeFleet(t *testing.T) *fakeFleet {
	f := &fakeFleet{agent: prometheus.NewRegistry(), aggregator: prometheus.NewRegistry(), names: map[string]bool{}}
	gauge := func(reg *prometheus.Registry, name string, labels []string, values ...[]string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name}, labels)
		reg.MustRegister(g)
		f.names[name] = true
		for _, v := range values {
			g.WithLabelValues(v...).Set(1)
		}
		return g
	}
	counter := func(reg *prometheus.Registry, name string, labels []string, values ...[]string) {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, labels)
		reg.MustRegister(c)
		f.names[name] = true
		for _, v := range values {
			c.WithLabelValues(v...).Add(1)
		}
		f.counters = append(f.counters, counterSeries{c, values})
	}
	wl := [][]string{{testWorkloads[0]}, {testWorkloads[1]}}
	pods := [][]string{{"monitoring", "telemetry-agent-x7k2p", "u-1", testWorkloads[0]}, {"default", "web-7d9f8-abcde", "u-2", testWorkloads[1]}}
	for _, m := range []string{"connects", "requests", "tx_bytes", "rx_bytes", "packets"} {
		counter(f.agent, "fanout_pod_api_"+m+"_total", []string{"namespace", "pod", "uid", "workload"}, pods...)
	}
	for _, m := range []string{"connects", "requests", "tx_bytes", "rx_bytes"} {
		counter(f.agent, "fanout_workload_api_"+m+"_total", []string{"workload"}, wl...)
	}
	maps := [][]string{{"counters"}, {"blocked"}, {"api_endpoints"}}
	entries := gauge(f.agent, "fanout_agent_map_entries", []string{"map"}, maps...)
	entries.WithLabelValues("counters").Set(9500)
	maxEntries := gauge(f.agent, "fanout_agent_map_max_entries", []string{"map"}, maps...)
	maxEntries.WithLabelValues("counters").Set(10000)
	maxEntries.WithLabelValues("blocked").Set(1024)
	maxEntries.WithLabelValues("api_endpoints").Set(64)
	counter(f.agent, "fanout_agent_map_full_total", []string{"map"}, maps...)
	gauge(f.agent, "fanout_agent_unknown_cgroups", nil, []string{}).WithLabelValues().Set(3)
	gauge(f.agent, "fanout_agent_scrape_duration_seconds", nil, []string{}).WithLabelValues().Set(0.004)
	gauge(f.agent, "fanout_agent_scrape_success", nil, []string{})
	gauge(f.agent, "fanout_agent_aggregator_connected", []string{"address"}, []string{"10.0.0.10:9401"}, []string{"10.0.0.11:9401"})
	counter(f.agent, "fanout_agent_reports_sent_total", nil, []string{})
	counter(f.agent, "fanout_agent_report_errors_total", nil, []string{})
	counter(f.agent, "fanout_agent_reports_dropped_total", []string{"address"}, []string{"10.0.0.10:9401"})
	gauge(f.agent, "fanout_agent_blocks_active", []string{"workload"}, wl[0])
	counter(f.agent, "fanout_agent_connects_denied_total", []string{"workload"}, wl[0])
	counter(f.agent, "fanout_agent_sockets_destroyed_total", []string{"workload"}, wl[0])
	counter(f.agent, "fanout_agent_block_refused_total", []string{"workload", "reason"}, []string{testWorkloads[1], "protected"})
	gauge(f.agent, "fanout_agent_probe_mode", []string{"mode"}, []string{"sockops"})
	gauge(f.agent, "fanout_agent_probe_handoff", nil, []string{}).WithLabelValues().Set(0)
	for _, m := range []string{"failed_connects", "connect_timeouts", "resets", "retransmit_timeouts"} {
		counter(f.agent, "fanout_workload_api_"+m+"_total", []string{"workload"}, wl...)
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fanout_workload_api_response_latency_seconds",
		Help: "latency", Buckets: prometheus.ExponentialBuckets(0.001, 4, 6)}, []string{"workload"})
	f.agent.MustRegister(latency)
	f.names["fanout_workload_api_response_latency_seconds"] = true
	for _, v := range wl {
		latency.WithLabelValues(v...).Observe(0.012)
	}

	gauge(f.aggregator, "fanout_aggregator_nodes_reporting", nil, []string{}).WithLabelValues().Set(2500)
	counter(f.aggregator, "fanout_aggregator_reports_total", nil, []string{})
	gauge(f.aggregator, "fanout_aggregator_workload_node_pairs", nil, []string{}).WithLabelValues().Set(20000)
	counter(f.aggregator, "fanout_aggregator_reports_rejected_total", []string{"reason"}, []string{"version"})
	for _, m := range []string{"requests", "rx_bytes", "connects"} {
		g := gauge(f.aggregator, "fanout_workload_fleet_"+m+"_per_second", []string{"workload"}, wl...)
		g.WithLabelValues(testWorkloads[0]).Set(2500)
	}
	gauge(f.aggregator, "fanout_workload_synchronized_nodes", []string{"workload"}, wl...).WithLabelValues(testWorkloads[0]).Set(2400)
	gauge(f.aggregator, "fanout_workload_projected_load_ratio", []string{"workload"}, wl...).WithLabelValues(testWorkloads[0]).Set(1.7)
	state := gauge(f.aggregator, "fanout_workload_state", []string{"workload", "state"})
	for _, s := range workloadStates {
		state.WithLabelValues(testWorkloads[0], s.state).Set(b2f(s.state == "trip"))
		state.WithLabelValues(testWorkloads[1], s.state).Set(b2f(s.state == "observe"))
	}
	counter(f.aggregator, "fanout_decisions_total", []string{"action", "workload"},
		[]string{"alert", testWorkloads[0]}, []string{"trip", testWorkloads[0]})
	gauge(f.aggregator, "fanout_apiserver_utilization_ratio", nil, []string{}).WithLabelValues().Set(0.85)
	capacity := gauge(f.aggregator, "fanout_headroom_capacity", []string{"unit", "source"})
	capacity.WithLabelValues("requests_per_second", "learned").Set(420)
	capacity.WithLabelValues("rx_bytes_per_second", "learned").Set(1.1e8)
	util := gauge(f.aggregator, "fanout_headroom_utilization_ratio", []string{"source"})
	for _, s := range []string{"seats", "latency", "nodes", "used"} {
		util.WithLabelValues(s).Set(0.6)
	}
	gauge(f.aggregator, "fanout_headroom_confidence", nil, []string{}).WithLabelValues().Set(0.8)
	gauge(f.aggregator, "fanout_headroom_fit_samples", nil, []string{}).WithLabelValues().Set(40)
	gauge(f.aggregator, "fanout_headroom_apiserver_fresh", nil, []string{})
	gauge(f.aggregator, "fanout_headroom_known", nil, []string{})
	gauge(f.aggregator, "fanout_headroom_scrape_success", []string{"replica"}, []string{"10.0.0.1:6443"})
	gauge(f.aggregator, "fanout_headroom_scrape_duration_seconds", []string{"replica"}, []string{"10.0.0.1:6443"}).WithLabelValues("10.0.0.1:6443").Set(0.03)
	counter(f.aggregator, "fanout_headroom_scrape_failures_total", []string{"replica"}, []string{"10.0.0.1:6443"})
	gauge(f.aggregator, "fanout_headroom_scrape_body_bytes", []string{"replica"}, []string{"10.0.0.1:6443"})
	gauge(f.aggregator, "fanout_placement_objects", []string{"kind"}, []string{"workload"}, []string{"hpa"})
	counter(f.aggregator, "fanout_placement_dropped_total", nil, []string{})
	gauge(f.aggregator, "fanout_placement_synced", nil, []string{})
	gauge(f.aggregator, "fanout_workload_release_held", []string{"workload"}, wl[0])
	counter(f.aggregator, "fanout_aggregator_names_folded_total", nil, []string{})
	gauge(f.aggregator, "fanout_aggregator_workloads_folded", nil, []string{})
	// Closed loop of the tripped workload: 2400 of 2500 nodes enforce.
	gauge(f.aggregator, "fanout_workload_enforcement_coverage_ratio", []string{"workload"}, wl[0]).WithLabelValues(testWorkloads[0]).Set(0.96)
	gauge(f.aggregator, "fanout_workload_enforcement_nodes_running", []string{"workload"}, wl[0]).WithLabelValues(testWorkloads[0]).Set(2500)
	gauge(f.aggregator, "fanout_workload_enforcement_nodes_enforcing", []string{"workload"}, wl[0]).WithLabelValues(testWorkloads[0]).Set(2400)
	for _, reg := range []*prometheus.Registry{f.agent, f.aggregator} {
		b := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fanout_build_info", Help: "build"}, []string{"version"})
		reg.MustRegister(b)
		b.WithLabelValues("v0.1.0").Set(1)
	}
	f.names["fanout_build_info"] = true
	return f
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type counterSeries struct {
	vec    *prometheus.CounterVec
	values [][]string
}

// grow keeps every counter series increasing until ctx ends, so rate()/increase() panels have data.
func (f *fakeFleet) grow(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for _, c := range f.counters {
				for _, v := range c.values {
					c.vec.WithLabelValues(v...).Add(3)
				}
			}
		}
	}
}

// serve starts an HTTP server for reg on a free loopback port and returns host:port.
func serve(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // closed in cleanup
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// documentedMetrics extracts every metric name listed in docs/interfaces.md, expanding `{a,b}` name alternatives.
func documentedMetrics(doc string) []string {
	re := regexp.MustCompile(`fanout_[a-z_]+(?:\{[a-z_,]+\}[a-z_]+)?`)
	seen := map[string]bool{}
	for _, m := range re.FindAllString(doc, -1) {
		if i := strings.IndexByte(m, '{'); i >= 0 {
			j := strings.IndexByte(m, '}')
			for _, alt := range strings.Split(m[i+1:j], ",") {
				seen[m[:i]+alt+m[j+1:]] = true
			}
			continue
		}
		seen[strings.TrimSuffix(m, "_")] = true
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
