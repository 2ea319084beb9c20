package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// Collector reads the engine's status at scrape time.
type Collector struct {
	eng                                    *engine.Engine
	nodes, util, req, rx, conn, sync, proj *prometheus.Desc
	state, decisions, pairs                *prometheus.Desc
}

// New returns a collector over eng.
func New(eng *engine.Engine) *Collector {
	w := []string{"workload"}
	return &Collector{
		eng:       eng,
		nodes:     prometheus.NewDesc("fanout_aggregator_nodes_reporting", "Nodes that reported in the last closed second.", nil, nil),
		util:      prometheus.NewDesc("fanout_apiserver_utilization_ratio", "Fleet API load as a share of the configured API server capacity.", nil, nil),
		req:       prometheus.NewDesc("fanout_workload_fleet_requests_per_second", "Fleet-wide API requests per second of a workload.", w, nil),
		rx:        prometheus.NewDesc("fanout_workload_fleet_rx_bytes_per_second", "Fleet-wide API response bytes per second of a workload.", w, nil),
		conn:      prometheus.NewDesc("fanout_workload_fleet_connects_per_second", "Fleet-wide API connects per second of a workload.", w, nil),
		sync:      prometheus.NewDesc("fanout_workload_synchronized_nodes", "Nodes whose rate for the workload jumped together recently.", w, nil),
		proj:      prometheus.NewDesc("fanout_workload_projected_load_ratio", "Projected API server utilization with the workload at full placement.", w, nil),
		state:     prometheus.NewDesc("fanout_workload_state", "Kill-switch state of a workload (1 for the current state).", []string{"workload", "state"}, nil),
		decisions: prometheus.NewDesc("fanout_decisions_total", "Kill-switch decisions.", []string{"action", "workload"}, nil),
		pairs:     prometheus.NewDesc("fanout_aggregator_workload_node_pairs", "Workload-node states held in memory.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.util, c.req, c.rx, c.conn, c.sync, c.proj, c.state, c.decisions, c.pairs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.eng.Status()
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(st.NodesReporting))
	ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, st.Utilization)
	ch <- prometheus.MustNewConstMetric(c.pairs, prometheus.GaugeValue, float64(st.Pairs))
	for _, w := range st.Workloads {
		ch <- prometheus.MustNewConstMetric(c.req, prometheus.GaugeValue, w.Now.Requests, w.Workload)
		ch <- prometheus.MustNewConstMetric(c.rx, prometheus.GaugeValue, w.Now.RxBytes, w.Workload)
		ch <- prometheus.MustNewConstMetric(c.conn, prometheus.GaugeValue, w.Now.Connects, w.Workload)
		ch <- prometheus.MustNewConstMetric(c.sync, prometheus.GaugeValue, float64(w.SyncNodes), w.Workload)
		ch <- prometheus.MustNewConstMetric(c.proj, prometheus.GaugeValue, w.ProjectedRatio, w.Workload)
		for _, s := range killswitch.States {
			v := 0.0
			if s == w.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, w.Workload, s.String())
		}
	}
	for k, v := range st.Decisions {
		ch <- prometheus.MustNewConstMetric(c.decisions, prometheus.CounterValue, float64(v), k[0], k[1])
	}
}
