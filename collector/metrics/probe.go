package metrics

import (
	"context"
	"log/slog"
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
)

// ProbeState is what the traffic probe knows beyond the counters: which design runs, and per workload the kernel's
// view of the API server's answers (response latency as log2 microsecond buckets, connection outcomes), cumulative
// since the agent started.
type ProbeState struct {
	Mode      string // "sockops" or "cgroup_skb"
	Handoff   bool   // cgroup_skb links of a previous layout still count older sockets
	Workloads []WorkloadHealth
}

// WorkloadHealth is one workload's cumulative latency histogram and connection outcomes.
type WorkloadHealth struct {
	Workload           string
	Buckets            []uint64 // bucket i: [2^i, 2^(i+1)) us; bucket 0 also < 1 us; the last one everything above
	SumUs              uint64
	FailedConnects     uint64
	ConnectTimeouts    uint64
	Resets             uint64
	RetransmitTimeouts uint64
}

// ProbeSource provides ProbeState at scrape time.
type ProbeSource interface {
	ProbeState(ctx context.Context) ProbeState
}

// MaxHealthWorkloads bounds the workload label of the latency and outcome series; workloads beyond it (by most
// responses) are summed into workload="other".
const MaxHealthWorkloads = 200

// ProbeCollector exports fanout_agent_probe_mode{mode}, fanout_agent_probe_handoff,
// fanout_workload_api_response_latency_seconds{workload} (histogram) and
// fanout_workload_api_{failed_connects,connect_timeouts,resets,retransmit_timeouts}_total{workload}.
type ProbeCollector struct {
	src                                   ProbeSource
	log                                   *slog.Logger
	mode, handoff, latency                *prometheus.Desc
	failed, timeouts, resets, retransmits *prometheus.Desc
}

// NewProbeCollector returns the probe's collector; register it on the agent's registry.
func NewProbeCollector(src ProbeSource, logger *slog.Logger) *ProbeCollector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	wl := []string{"workload"}
	return &ProbeCollector{src: src, log: logger.With("component", "metrics"),
		mode: prometheus.NewDesc("fanout_agent_probe_mode",
			"1 for the traffic probe design that runs: sockops (per-socket, API sockets only) or cgroup_skb (fallback).",
			[]string{"mode"}, nil),
		handoff: prometheus.NewDesc("fanout_agent_probe_handoff",
			"1 while cgroup_skb links of a previous agent version still count API sockets opened before the upgrade.", nil, nil),
		latency: prometheus.NewDesc("fanout_workload_api_response_latency_seconds",
			"Kernel-observed time from a request's first egress byte to the first response byte, API-server calls of the workload on this node.",
			wl, nil),
		failed: prometheus.NewDesc("fanout_workload_api_failed_connects_total",
			"API-server connects of the workload that never established (refused, unreachable, timed out).", wl, nil),
		timeouts: prometheus.NewDesc("fanout_workload_api_connect_timeouts_total",
			"Failed API-server connects that timed out (SYN retransmitted or ETIMEDOUT).", wl, nil),
		resets: prometheus.NewDesc("fanout_workload_api_resets_total",
			"Established API-server connections of the workload that were reset.", wl, nil),
		retransmits: prometheus.NewDesc("fanout_workload_api_retransmit_timeouts_total",
			"Retransmission timeouts on established API-server connections of the workload.", wl, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *ProbeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.mode, c.handoff, c.latency, c.failed, c.timeouts, c.resets, c.retransmits} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ProbeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.ProbeState(context.Background())
	if st.Mode != "" {
		ch <- prometheus.MustNewConstMetric(c.mode, prometheus.GaugeValue, 1, st.Mode)
	}
	h := 0.0
	if st.Handoff {
		h = 1
	}
	ch <- prometheus.MustNewConstMetric(c.handoff, prometheus.GaugeValue, h)
	for _, w := range boundWorkloads(st.Workloads, MaxHealthWorkloads) {
		var count uint64
		cum := make(map[float64]uint64, len(w.Buckets))
		for i, v := range w.Buckets {
			count += v
			if i < len(w.Buckets)-1 { // the last bucket is open-ended: +Inf
				cum[math.Ldexp(1, i+1)/1e6] = count
			}
		}
		m, err := prometheus.NewConstHistogram(c.latency, count, float64(w.SumUs)/1e6, cum, w.Workload)
		if err != nil {
			c.log.Warn("latency histogram", "workload", w.Workload, "err", err)
			continue
		}
		ch <- m
		for _, s := range []struct {
			d *prometheus.Desc
			v uint64
		}{{c.failed, w.FailedConnects}, {c.timeouts, w.ConnectTimeouts}, {c.resets, w.Resets},
			{c.retransmits, w.RetransmitTimeouts}} {
			ch <- prometheus.MustNewConstMetric(s.d, prometheus.CounterValue, float64(s.v), w.Workload)
		}
	}
}

// boundWorkloads keeps the max-1 workloads with the most responses and sums the rest into "other".
func boundWorkloads(ws []WorkloadHealth, max int) []WorkloadHealth {
	if len(ws) <= max {
		return ws
	}
	total := func(w WorkloadHealth) uint64 {
		var n uint64
		for _, v := range w.Buckets {
			n += v
		}
		return n + w.FailedConnects + w.Resets
	}
	sorted := append([]WorkloadHealth(nil), ws...)
	// By total, descending; ties by name, so the same workloads get their own series from one scrape to the next.
	sort.Slice(sorted, func(i, j int) bool {
		if ti, tj := total(sorted[i]), total(sorted[j]); ti != tj {
			return ti > tj
		}
		return sorted[i].Workload < sorted[j].Workload
	})
	out := sorted[: max-1 : max-1]
	other := WorkloadHealth{Workload: "other"}
	for _, w := range sorted[max-1:] {
		if len(other.Buckets) < len(w.Buckets) {
			other.Buckets = append(other.Buckets, make([]uint64, len(w.Buckets)-len(other.Buckets))...)
		}
		for i, v := range w.Buckets {
			other.Buckets[i] += v
		}
		other.SumUs += w.SumUs
		other.FailedConnects += w.FailedConnects
		other.ConnectTimeouts += w.ConnectTimeouts
		other.Resets += w.Resets
		other.RetransmitTimeouts += w.RetransmitTimeouts
	}
	return append(out, other)
}
