package enforce

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutdev/fanout/collector/blockmap"
)

var (
	descBlocksActive = prometheus.NewDesc("fanout_agent_blocks_active",
		"Pod cgroups of the workload currently blocked from the API server on this node.", []string{"workload"}, nil)
	descDenied = prometheus.NewDesc("fanout_agent_connects_denied_total",
		"connect() calls to the API server denied (EPERM) by the kill switch.", []string{"workload"}, nil)
	descDestroyed = prometheus.NewDesc("fanout_agent_sockets_destroyed_total",
		"Established API-server connections torn down by the kill switch.", []string{"workload"}, nil)
	descRefused = prometheus.NewDesc("fanout_agent_block_refused_total",
		"Block attempts refused because the workload or pod is protected.", []string{"workload", "reason"}, nil)
)

// Describe implements prometheus.Collector.
func (e *Enforcer) Describe(ch chan<- *prometheus.Desc) {
	ch <- descBlocksActive
	ch <- descDenied
	ch <- descDestroyed
	ch <- descRefused
}

// Collect implements prometheus.Collector: block counts from the pinned block list, denials from the enforce
// program's per-CPU counters (attributed to workloads by cgroup id).
func (e *Enforcer) Collect(ch chan<- prometheus.Metric) {
	now := e.clock.BootNow()
	entries, err := e.maps.List()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descBlocksActive, err)
	}
	denied, derr := e.denied.Denied()
	if derr != nil {
		ch <- prometheus.NewInvalidMetric(descDenied, derr)
	}

	e.mu.Lock()
	active := map[string]float64{}
	for name := range e.workloads {
		active[name] = 0
	}
	for id, en := range entries {
		if en.Active(now) {
			active[e.labelFor(id, en)]++
		}
	}
	den := map[string]float64{}
	for id, n := range denied {
		name, ok := e.names[id]
		if !ok {
			name = e.labelFor(id, blockmap.Entry{})
		}
		den[name] += float64(n)
	}
	for name, v := range active {
		ch <- prometheus.MustNewConstMetric(descBlocksActive, prometheus.GaugeValue, v, name)
	}
	for name, v := range den {
		ch <- prometheus.MustNewConstMetric(descDenied, prometheus.CounterValue, v, name)
	}
	for name, v := range e.destroyed {
		ch <- prometheus.MustNewConstMetric(descDestroyed, prometheus.CounterValue, v, name)
	}
	for k, v := range e.refused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, v, k[0], k[1])
	}
	e.mu.Unlock()
}
