package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fanoutdev/fanout/aggregator/apiserverstats"
	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/aggregator/placement"
)

// HeadroomSources are what the headroom collector reads at scrape time; any may be nil.
type HeadroomSources struct {
	// Estimate returns the estimate the detector used for the last closed second.
	Estimate func() headroom.Estimate
	// Scrapes returns the API server telemetry source's per-replica state.
	Scrapes func() []apiserverstats.ReplicaStatus
	// Placement returns the placement watcher's state.
	Placement func() placement.Stats
}

// HeadroomCollector exposes the learned headroom, the telemetry scrapes and the placement watcher.
type HeadroomCollector struct {
	src                                      HeadroomSources
	capacity, util, confidence, samples      *prometheus.Desc
	fresh, known                             *prometheus.Desc
	scrapeOK, scrapeDur, scrapeFail, scrapeB *prometheus.Desc
	plObjects, plDropped, plSynced           *prometheus.Desc
}

// NewHeadroom returns the collector.
func NewHeadroom(src HeadroomSources) *HeadroomCollector {
	r := []string{"replica"}
	return &HeadroomCollector{
		src:        src,
		capacity:   prometheus.NewDesc("fanout_headroom_capacity", "Estimated API server capacity in the load units fanout measures (unit: requests_per_second or rx_bytes_per_second; 0 = unknown).", []string{"unit", "source"}, nil),
		util:       prometheus.NewDesc("fanout_headroom_utilization_ratio", "API server utilization by signal (seats, latency, nodes; -1 when that signal says nothing now) and the one in use (used).", []string{"source"}, nil),
		confidence: prometheus.NewDesc("fanout_headroom_confidence", "Confidence in the learned capacity, 0..1.", nil, nil),
		samples:    prometheus.NewDesc("fanout_headroom_fit_samples", "API server observations the learned capacity rests on.", nil, nil),
		fresh:      prometheus.NewDesc("fanout_headroom_apiserver_fresh", "1 when an API server replica's metrics arrived within the staleness window.", nil, nil),
		known:      prometheus.NewDesc("fanout_headroom_known", "1 when a capacity (learned or flag) is in force.", nil, nil),
		scrapeOK:   prometheus.NewDesc("fanout_headroom_scrape_success", "1 when the last read of the replica's flow-control metrics succeeded.", r, nil),
		scrapeDur:  prometheus.NewDesc("fanout_headroom_scrape_duration_seconds", "Duration of the last read of the replica's flow-control metrics.", r, nil),
		scrapeFail: prometheus.NewDesc("fanout_headroom_scrape_failures_total", "Failed reads of the replica's flow-control metrics.", r, nil),
		scrapeB:    prometheus.NewDesc("fanout_headroom_scrape_body_bytes", "Size of the replica's last /metrics page.", r, nil),
		plObjects:  prometheus.NewDesc("fanout_placement_objects", "Workloads and HPAs the placement watcher tracks.", []string{"kind"}, nil),
		plDropped:  prometheus.NewDesc("fanout_placement_dropped_total", "Objects ignored because the placement watcher was full.", nil, nil),
		plSynced:   prometheus.NewDesc("fanout_placement_synced", "1 once the placement watcher's first list of every kind is in.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *HeadroomCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.capacity, c.util, c.confidence, c.samples, c.fresh, c.known, c.scrapeOK, c.scrapeDur,
		c.scrapeFail, c.scrapeB, c.plObjects, c.plDropped, c.plSynced} {
		ch <- d
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect implements prometheus.Collector.
func (c *HeadroomCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Estimate != nil {
		e := c.src.Estimate()
		src := string(e.Source)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, e.CapacityRequestsPerS, "requests_per_second", src)
		ch <- prometheus.MustNewConstMetric(c.capacity, prometheus.GaugeValue, e.CapacityRxBytesPerS, "rx_bytes_per_second", src)
		ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, e.UtilizationSeats, headroom.FromSeats)
		ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, e.UtilizationLatency, headroom.FromLatency)
		ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, e.UtilizationNodes, headroom.FromNodes)
		ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, e.Utilization, "used")
		ch <- prometheus.MustNewConstMetric(c.confidence, prometheus.GaugeValue, e.Confidence)
		ch <- prometheus.MustNewConstMetric(c.samples, prometheus.GaugeValue, float64(e.Samples))
		ch <- prometheus.MustNewConstMetric(c.fresh, prometheus.GaugeValue, b2f(e.APIServerFresh))
		ch <- prometheus.MustNewConstMetric(c.known, prometheus.GaugeValue, b2f(e.Known()))
	}
	if c.src.Scrapes != nil {
		for _, s := range c.src.Scrapes() {
			ch <- prometheus.MustNewConstMetric(c.scrapeOK, prometheus.GaugeValue, b2f(s.Success), s.Replica)
			ch <- prometheus.MustNewConstMetric(c.scrapeDur, prometheus.GaugeValue, s.Duration.Seconds(), s.Replica)
			ch <- prometheus.MustNewConstMetric(c.scrapeFail, prometheus.CounterValue, float64(s.Failures), s.Replica)
			ch <- prometheus.MustNewConstMetric(c.scrapeB, prometheus.GaugeValue, float64(s.BodyBytes), s.Replica)
		}
	}
	if c.src.Placement != nil {
		st := c.src.Placement()
		ch <- prometheus.MustNewConstMetric(c.plObjects, prometheus.GaugeValue, float64(st.Workloads), "workload")
		ch <- prometheus.MustNewConstMetric(c.plObjects, prometheus.GaugeValue, float64(st.HPAs), "hpa")
		ch <- prometheus.MustNewConstMetric(c.plDropped, prometheus.CounterValue, float64(st.Dropped))
		ch <- prometheus.MustNewConstMetric(c.plSynced, prometheus.GaugeValue, b2f(st.Synced))
	}
}
