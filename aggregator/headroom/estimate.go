package headroom

import (
	"fmt"
	"math"
	"time"
)

// Source says where an estimate's capacity comes from.
type Source string

// Sources.
const (
	// SourceNone: nothing known yet (cold start: no API server sample has been fitted, no capacity flag).
	SourceNone Source = "none"
	// SourceLearned: fitted from the API server's telemetry against fanout's own load measurement.
	SourceLearned Source = "learned"
	// SourceFlag: told by the operator (--apiserver.capacity-*), an override.
	SourceFlag Source = "flag"
)

// Utilization sources, for Estimate.UtilizationSource.
const (
	FromSeats   = "seats"   // executing seats over the nominal limit (plus queueing past saturation)
	FromLatency = "latency" // the API server's request duration against its own learned baseline
	FromNodes   = "nodes"   // node-observed latency and connection failures (the API server's metrics are gone)
	FromModel   = "model"   // the last fitted capacity applied to the load fanout measures now
)

// Estimate is the API server's headroom as the estimator sees it at one second.
type Estimate struct {
	Time   time.Time
	Source Source
	// CapacityRequestsPerS and CapacityRxBytesPerS are the load (in the units fanout measures in the kernel: requests
	// per second and response bytes per second, fleet-wide) at which the API server saturates; utilization is the
	// larger of load/capacity over both (0 = unknown).
	CapacityRequestsPerS, CapacityRxBytesPerS float64
	// RequestsFromPrior / RxBytesFromPrior: that dimension has never been seen to load the API server, so its
	// capacity follows from the other through the prior cost ratio (and the load seen so far as a lower bound).
	RequestsFromPrior, RxBytesFromPrior bool
	// Utilization now (1 = saturated), from UtilizationSource.
	Utilization       float64
	UtilizationSource string
	// Per source, -1 when that source says nothing now.
	UtilizationSeats, UtilizationLatency, UtilizationNodes float64
	// Confidence in the capacities, 0..1: grows with the samples and the spread of utilization the fit has seen.
	Confidence float64
	// Samples is how many API server observations the fit rests on; Spread the range of utilization among them.
	Samples int
	Spread  float64
	// APIServerFresh: a replica's metrics arrived within the staleness window.
	APIServerFresh bool
	// Saturated: the API server's last reading showed it serving all it can (latency over 10x its baseline, or
	// utilization past the fit range, queueing or rejections); Utilization is then at least 1.
	Saturated           bool
	LastAPIServerSample time.Time
}

// Known reports whether the estimate has a capacity the detector can use.
func (e *Estimate) Known() bool {
	return e.Source != SourceNone && (e.CapacityRequestsPerS > 0 || e.CapacityRxBytesPerS > 0)
}

// UtilizationOf returns the utilization a load would cause: the larger of its two ratios to capacity.
func (e *Estimate) UtilizationOf(l Load) float64 {
	u := 0.0
	if e.CapacityRequestsPerS > 0 {
		u = math.Max(u, l.Requests/e.CapacityRequestsPerS)
	}
	if e.CapacityRxBytesPerS > 0 {
		u = math.Max(u, l.RxBytes/e.CapacityRxBytesPerS)
	}
	return u
}

// Flag returns the estimate of an operator-given capacity (either may be 0 = unknown).
func Flag(capRequestsPerS, capRxBytesPerS float64) Estimate {
	e := Estimate{Source: SourceFlag, CapacityRequestsPerS: capRequestsPerS, CapacityRxBytesPerS: capRxBytesPerS,
		Confidence: 1, UtilizationSeats: -1, UtilizationLatency: -1, UtilizationNodes: -1, UtilizationSource: FromModel}
	if !e.Known() {
		e.Source, e.Confidence = SourceNone, 0
	}
	return e
}

// String is the estimate as decision reasons quote it.
func (e *Estimate) String() string {
	if !e.Known() {
		return "headroom unknown (no API server metrics fitted yet)"
	}
	prior := ""
	switch {
	case e.RequestsFromPrior:
		prior = ", req/s from prior"
	case e.RxBytesFromPrior:
		prior = ", bytes/s from prior"
	}
	util := ""
	if e.UtilizationSource != "" && e.Source != SourceFlag {
		util = fmt.Sprintf(", utilization %.0f%% (%s)", e.Utilization*100, e.UtilizationSource)
		if e.Saturated {
			util = fmt.Sprintf(", saturated (%s)", e.UtilizationSource)
		}
	}
	return fmt.Sprintf("capacity %.0f req/s / %s/s (%s, confidence %.2f, %d samples%s)%s",
		e.CapacityRequestsPerS, bytesStr(e.CapacityRxBytesPerS), e.Source, e.Confidence, e.Samples, prior, util)
}

func bytesStr(b float64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.2f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}
