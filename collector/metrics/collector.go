package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PodCounters are a pod's cumulative API-server traffic since the agent started.
type PodCounters struct {
	// UID is the pod's UID: two pods can share namespace and name (a StatefulSet pod recreated), never a UID.
	UID       string
	Namespace string
	Pod       string
	Workload  string // Kind/namespace/name
	Connects  uint64
	Requests  uint64 // egress payload segments: the request-rate proxy
	TxBytes   uint64
	RxBytes   uint64
	Packets   uint64
}

// WorkloadCounters are a workload's cumulative API-server traffic on this node since the agent started.
type WorkloadCounters struct {
	Workload string
	Connects uint64
	Requests uint64
	TxBytes  uint64
	RxBytes  uint64
}

// MapStats is one BPF map's pressure.
type MapStats struct {
	Name       string
	Entries    uint64
	MaxEntries uint64
	// FullTotal counts updates that failed because the map was full (or, for LRU maps, insertions that could not
	// get an entry).
	FullTotal uint64
}

// State is what one scrape exports.
type State struct {
	Pods           []PodCounters
	Workloads      []WorkloadCounters
	Maps           []MapStats
	UnknownCgroups int // counted cgroups that resolve to no pod and no systemd unit
}

// Source provides the state at scrape time.
type Source interface {
	MetricsState(ctx context.Context) (State, error)
}

// SourceFunc adapts a function to Source.
type SourceFunc func(ctx context.Context) (State, error)

// MetricsState implements Source.
func (f SourceFunc) MetricsState(ctx context.Context) (State, error) { return f(ctx) }

// Collector is the agent's prometheus.Collector.
type Collector struct {
	src     Source
	log     *slog.Logger
	timeout time.Duration

	podConnects, podRequests, podTx, podRx, podPackets *prometheus.Desc
	wlConnects, wlRequests, wlTx, wlRx                 *prometheus.Desc
	mapEntries, mapMax, mapFull                        *prometheus.Desc
	unknown, scrapeDuration, scrapeSuccess             *prometheus.Desc
}

// New returns a Collector reading src. Register it with registry.MustRegister or Register.
func New(src Source, logger *slog.Logger) *Collector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pod := []string{"namespace", "pod", "uid", "workload"}
	wl := []string{"workload"}
	m := []string{"map"}
	d := prometheus.NewDesc
	return &Collector{
		src: src, log: logger.With("component", "metrics"), timeout: 5 * time.Second,
		podConnects:    d("fanout_pod_api_connects_total", "connect() calls to the API server, per pod.", pod, nil),
		podRequests:    d("fanout_pod_api_requests_total", "Egress payload segments to the API server (request-rate proxy), per pod.", pod, nil),
		podTx:          d("fanout_pod_api_tx_bytes_total", "Payload bytes sent to the API server, per pod.", pod, nil),
		podRx:          d("fanout_pod_api_rx_bytes_total", "Payload bytes received from the API server, per pod.", pod, nil),
		podPackets:     d("fanout_pod_api_packets_total", "Packets to and from the API server, per pod.", pod, nil),
		wlConnects:     d("fanout_workload_api_connects_total", "connect() calls to the API server from this node, per workload.", wl, nil),
		wlRequests:     d("fanout_workload_api_requests_total", "Egress payload segments to the API server from this node, per workload.", wl, nil),
		wlTx:           d("fanout_workload_api_tx_bytes_total", "Payload bytes sent to the API server from this node, per workload.", wl, nil),
		wlRx:           d("fanout_workload_api_rx_bytes_total", "Payload bytes received from the API server on this node, per workload.", wl, nil),
		mapEntries:     d("fanout_agent_map_entries", "Entries in a BPF map.", m, nil),
		mapMax:         d("fanout_agent_map_max_entries", "Capacity of a BPF map.", m, nil),
		mapFull:        d("fanout_agent_map_full_total", "Updates that failed because a BPF map was full.", m, nil),
		unknown:        d("fanout_agent_unknown_cgroups", "Counted cgroups that resolve to no pod and no systemd unit.", nil, nil),
		scrapeDuration: d("fanout_agent_scrape_duration_seconds", "Time taken to gather the agent's traffic state.", nil, nil),
		scrapeSuccess:  d("fanout_agent_scrape_success", "1 if the agent's traffic state was gathered, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.podConnects, c.podRequests, c.podTx, c.podRx, c.podPackets,
		c.wlConnects, c.wlRequests, c.wlTx, c.wlRx, c.mapEntries, c.mapMax, c.mapFull, c.unknown,
		c.scrapeDuration, c.scrapeSuccess} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	st, err := c.src.MetricsState(ctx)
	ch <- prometheus.MustNewConstMetric(c.scrapeDuration, prometheus.GaugeValue, time.Since(start).Seconds())
	if err != nil {
		c.log.Warn("gather traffic state", "err", err)
		ch <- prometheus.MustNewConstMetric(c.scrapeSuccess, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.scrapeSuccess, prometheus.GaugeValue, 1)
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, p := range uniquePods(st.Pods) {
		counter(c.podConnects, p.Connects, p.Namespace, p.Pod, p.UID, p.Workload)
		counter(c.podRequests, p.Requests, p.Namespace, p.Pod, p.UID, p.Workload)
		counter(c.podTx, p.TxBytes, p.Namespace, p.Pod, p.UID, p.Workload)
		counter(c.podRx, p.RxBytes, p.Namespace, p.Pod, p.UID, p.Workload)
		counter(c.podPackets, p.Packets, p.Namespace, p.Pod, p.UID, p.Workload)
	}
	for _, w := range uniqueWorkloads(st.Workloads) {
		counter(c.wlConnects, w.Connects, w.Workload)
		counter(c.wlRequests, w.Requests, w.Workload)
		counter(c.wlTx, w.TxBytes, w.Workload)
		counter(c.wlRx, w.RxBytes, w.Workload)
	}
	for _, m := range st.Maps {
		ch <- prometheus.MustNewConstMetric(c.mapEntries, prometheus.GaugeValue, float64(m.Entries), m.Name)
		ch <- prometheus.MustNewConstMetric(c.mapMax, prometheus.GaugeValue, float64(m.MaxEntries), m.Name)
		counter(c.mapFull, m.FullTotal, m.Name)
	}
	ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, float64(st.UnknownCgroups))
}

// BuildInfo returns the fanout_build_info{version} gauge (always 1), for both binaries' registries.
func BuildInfo(version string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fanout_build_info", Help: "fanout build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	g.Set(1)
	return g
}

// uniquePods sums pods that would export the same label set (a source that lost the UID, or gave the same pod
// twice): a duplicate series fails the whole scrape, kill-switch metrics included.
func uniquePods(pods []PodCounters) []PodCounters {
	type key struct{ ns, pod, uid, wl string }
	idx := make(map[key]int, len(pods))
	out := make([]PodCounters, 0, len(pods))
	for _, p := range pods {
		k := key{p.Namespace, p.Pod, p.UID, p.Workload}
		i, ok := idx[k]
		if !ok {
			idx[k] = len(out)
			out = append(out, p)
			continue
		}
		o := &out[i]
		o.Connects += p.Connects
		o.Requests += p.Requests
		o.TxBytes += p.TxBytes
		o.RxBytes += p.RxBytes
		o.Packets += p.Packets
	}
	return out
}

// uniqueWorkloads sums workloads given twice (same reason as uniquePods).
func uniqueWorkloads(wls []WorkloadCounters) []WorkloadCounters {
	idx := make(map[string]int, len(wls))
	out := make([]WorkloadCounters, 0, len(wls))
	for _, w := range wls {
		i, ok := idx[w.Workload]
		if !ok {
			idx[w.Workload] = len(out)
			out = append(out, w)
			continue
		}
		o := &out[i]
		o.Connects += w.Connects
		o.Requests += w.Requests
		o.TxBytes += w.TxBytes
		o.RxBytes += w.RxBytes
	}
	return out
}
