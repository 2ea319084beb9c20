package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// Collector reads the engine's summary at scrape time. Per-workload series are bounded by Config.TopWorkloads (see
// bound); the workloads beyond it are exported as workload="other".
type Collector struct {
	eng                                    *engine.Engine
	top                                    int
	nodes, util, req, rx, conn, sync, proj *prometheus.Desc
	state, decisions, pairs                *prometheus.Desc
	held, coverage, running, enforcing     *prometheus.Desc
	folded                                 *prometheus.Desc
}

// New returns a collector over eng; check cfg with Config.Validate first (a negative bound exports every workload).
func New(eng *engine.Engine, cfg Config) *Collector {
	w := []string{"workload"}
	return &Collector{
		eng:   eng,
		top:   cfg.TopWorkloads,
		nodes: prometheus.NewDesc("fanout_aggregator_nodes_reporting", "Nodes that reported in the last closed second.", nil, nil),
		util:  prometheus.NewDesc("fanout_apiserver_utilization_ratio", "Fleet API load as a share of the configured API server capacity.", nil, nil),
		req: prometheus.NewDesc("fanout_workload_fleet_requests_per_second",
			`Fleet-wide API requests per second of a workload (workload="other": the sum of the workloads beyond --metrics.top-workloads).`, w, nil),
		rx: prometheus.NewDesc("fanout_workload_fleet_rx_bytes_per_second",
			`Fleet-wide API response bytes per second of a workload (workload="other": the sum of the workloads beyond --metrics.top-workloads).`, w, nil),
		conn: prometheus.NewDesc("fanout_workload_fleet_connects_per_second",
			`Fleet-wide API connects per second of a workload (workload="other": the sum of the workloads beyond --metrics.top-workloads).`, w, nil),
		sync: prometheus.NewDesc("fanout_workload_synchronized_nodes",
			`Nodes whose rate for the workload jumped together recently (workload="other": the most of the workloads beyond --metrics.top-workloads).`, w, nil),
		proj: prometheus.NewDesc("fanout_workload_projected_load_ratio",
			`Projected API server utilization with the workload at full placement (workload="other": the most of the workloads beyond --metrics.top-workloads).`, w, nil),
		state: prometheus.NewDesc("fanout_workload_state",
			`Kill-switch state of a workload (1 for the current state; workload="other", the workloads beyond --metrics.top-workloads, is always observe).`,
			[]string{"workload", "state"}, nil),
		decisions: prometheus.NewDesc("fanout_decisions_total",
			`Kill-switch decisions (workload="other": those on workloads no longer named here, added when a name is dropped; the sum over workloads never decreases).`,
			[]string{"action", "workload"}, nil),
		pairs: prometheus.NewDesc("fanout_aggregator_workload_node_pairs", "Workload-node states held in memory.", nil, nil),
		held: prometheus.NewDesc("fanout_workload_release_held",
			"1 while a due release of a tripped workload is held because its projected return does not fit the headroom.", w, nil),
		coverage: prometheus.NewDesc("fanout_workload_enforcement_coverage_ratio",
			"Of the nodes running a blocked workload, the share that reports enforcing the block at its epoch (closed loop).", w, nil),
		running:   prometheus.NewDesc("fanout_workload_enforcement_nodes_running", "Nodes running a blocked workload (its pods or its block).", w, nil),
		enforcing: prometheus.NewDesc("fanout_workload_enforcement_nodes_enforcing", "Nodes reporting the block of a blocked workload at its epoch.", w, nil),
		folded: prometheus.NewDesc("fanout_aggregator_workloads_folded",
			`Workloads held whose per-workload series this scrape exports as workload="other" (beyond --metrics.top-workloads; never an alerted, tripped or releasing one).`, nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.util, c.req, c.rx, c.conn, c.sync, c.proj, c.state, c.decisions, c.pairs,
		c.held, c.coverage, c.running, c.enforcing, c.folded} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	sum := c.eng.Summary()
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(sum.NodesReporting))
	ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, sum.Utilization)
	ch <- prometheus.MustNewConstMetric(c.pairs, prometheus.GaugeValue, float64(sum.Pairs))
	named, rest := bound(sum.Workloads, c.top)
	ch <- prometheus.MustNewConstMetric(c.folded, prometheus.GaugeValue, float64(rest.n))
	for _, i := range named {
		w := &sum.Workloads[i]
		c.workload(ch, w)
		if w.State == killswitch.Trip {
			held := 0.0
			if w.Held != "" {
				held = 1
			}
			ch <- prometheus.MustNewConstMetric(c.held, prometheus.GaugeValue, held, w.Workload)
		}
	}
	for w, cv := range c.eng.CoverageOf() {
		ch <- prometheus.MustNewConstMetric(c.coverage, prometheus.GaugeValue, cv.Ratio(), w)
		ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(cv.Running), w)
		ch <- prometheus.MustNewConstMetric(c.enforcing, prometheus.GaugeValue, float64(cv.Enforcing), w)
	}
	if rest.n > 0 {
		c.workload(ch, &rest.as)
	}
	for _, d := range sum.Decisions {
		w := d.Workload
		if w == "" {
			w = Other
		}
		ch <- prometheus.MustNewConstMetric(c.decisions, prometheus.CounterValue, float64(d.Count), string(d.Action), w)
	}
}

// workload sends one workload's rate, synchronization, projection and state series.
func (c *Collector) workload(ch chan<- prometheus.Metric, w *engine.WorkloadSummary) {
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
