package headroom

import (
	"fmt"
	"math"
	"time"
)

// Bounds on what a sample may carry: anything outside is hostile or broken input and is rejected.
const (
	maxSeats     = 1e7
	maxRejected  = 1e15
	maxSeconds   = 3600
	maxReplica   = 253
	LatencySlots = 32 // log2 microsecond buckets of api.LatencyHistogram
)

// Summary summarizes a histogram's observations made during one scrape interval (the delta of two scrapes).
type Summary struct {
	// Count is how many observations the interval added (0: none; the quantiles are then meaningless).
	Count float64
	// Mean and P99 in seconds, from the histogram's sum and bucket deltas.
	Mean, P99 float64
}

// APIServerSample is one scrape of one API server replica. All series are summed over the non-exempt priority
// levels (exempt requests, e.g. system:masters, do not queue and say nothing about headroom).
type APIServerSample struct {
	// Time is when the scrape was taken (the scraper's clock).
	Time time.Time
	// Replica names the API server instance (its address, or the Prometheus "instance" label).
	Replica string
	// ExecutingSeats: apiserver_flowcontrol_current_executing_seats.
	ExecutingSeats float64
	// LimitSeats: apiserver_flowcontrol_nominal_limit_seats (0: unknown, e.g. APF disabled).
	LimitSeats float64
	// InQueue: apiserver_flowcontrol_current_inqueue_requests.
	InQueue float64
	// RejectedTotal: apiserver_flowcontrol_rejected_requests_total, cumulative (the estimator takes deltas and
	// tolerates counter resets).
	RejectedTotal float64
	// Wait: apiserver_flowcontrol_request_wait_duration_seconds over the interval since the replica's last scrape.
	Wait Summary
	// Duration: apiserver_request_duration_seconds over the interval, long-running verbs (WATCH, CONNECT) excluded.
	Duration Summary
	// Latencies: the same per kind of request (verb, resource, scope), when the source tells them apart; latency is
	// then judged per kind against its own baseline, so a change in the mix of requests is not mistaken for
	// contention. Without them, Duration is judged as one kind.
	Latencies []KeyedLatency
}

// Validate rejects samples that no real API server would produce.
func (s *APIServerSample) Validate() error {
	if s.Time.IsZero() {
		return fmt.Errorf("api server sample: no time")
	}
	if len(s.Replica) > maxReplica {
		return fmt.Errorf("api server sample: replica name longer than %d", maxReplica)
	}
	for _, f := range []struct {
		name string
		v    float64
		max  float64
	}{
		{"executing seats", s.ExecutingSeats, maxSeats}, {"limit seats", s.LimitSeats, maxSeats},
		{"in-queue requests", s.InQueue, maxSeats}, {"rejected total", s.RejectedTotal, maxRejected},
		{"wait count", s.Wait.Count, maxRejected}, {"wait mean", s.Wait.Mean, maxSeconds}, {"wait p99", s.Wait.P99, maxSeconds},
		{"duration count", s.Duration.Count, maxRejected}, {"duration mean", s.Duration.Mean, maxSeconds},
		{"duration p99", s.Duration.P99, maxSeconds},
	} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > f.max {
			return fmt.Errorf("api server sample from %q: %s %v out of range [0, %g]", s.Replica, f.name, f.v, f.max)
		}
	}
	return validateKeyed(s.Replica, s.Latencies)
}

// Latency is a fleet-wide sum of api.LatencyHistogram (kernel-observed time from a request to the first response
// byte, log2 microsecond buckets).
type Latency struct {
	Buckets [LatencySlots]uint64
	Count   uint64
	SumUs   uint64
}

// Add adds one report's histogram; buckets past LatencySlots are ignored (as the wire contract says).
func (l *Latency) Add(buckets []uint64, count, sumUs uint64) {
	for i, b := range buckets {
		if i >= LatencySlots {
			break
		}
		l.Buckets[i] += b
	}
	l.Count += count
	l.SumUs += sumUs
}

// TypicalSeconds is a robust centre of the answers' latency, 0 without observations: the mean when it falls in the
// median's bucket (a narrow distribution), else the median, interpolated within its bucket. The kernel times a
// request's first byte to the next response data on a connection, so a watch stream's next event after a
// flow-control frame counts as a slow answer; a few of those move the mean by orders of magnitude, not the median.
func (l *Latency) TypicalSeconds() float64 {
	var n uint64
	for _, b := range l.Buckets {
		n += b
	}
	if n == 0 {
		return l.MeanSeconds()
	}
	half := float64(n) / 2
	var below float64
	for i, b := range l.Buckets {
		if b == 0 || below+float64(b) < half {
			below += float64(b)
			continue
		}
		lo, hi := math.Ldexp(1, i), math.Ldexp(1, i+1) // microseconds
		if i == 0 {
			lo = 0
		}
		if mean := l.MeanSeconds() * 1e6; mean >= lo && mean < hi {
			return mean / 1e6
		}
		frac := (half - below) / float64(b)
		if i == 0 {
			return frac * hi / 1e6
		}
		return lo * math.Pow(2, frac) / 1e6
	}
	return l.MeanSeconds()
}

// MeanSeconds returns the mean latency, or 0 without observations.
func (l *Latency) MeanSeconds() float64 {
	if l.Count == 0 {
		return 0
	}
	return float64(l.SumUs) / float64(l.Count) / 1e6
}

// NodeSignals is what every node's kernel saw of the API server's answers during one second, summed fleet-wide
// over every workload (api.WorkloadDelta.response_latency and .outcomes).
type NodeSignals struct {
	Latency Latency
	// From api.ConnOutcomes.
	FailedConnects, ConnectTimeouts, Resets, RetransmitTimeouts uint64
}

// AddOutcomes adds one report's connection outcomes.
func (n *NodeSignals) AddOutcomes(failedConnects, connectTimeouts, resets, retransmitTimeouts uint64) {
	n.FailedConnects += failedConnects
	n.ConnectTimeouts += connectTimeouts
	n.Resets += resets
	n.RetransmitTimeouts += retransmitTimeouts
}

// Merge adds o into n.
func (n *NodeSignals) Merge(o *NodeSignals) {
	n.Latency.Add(o.Latency.Buckets[:], o.Latency.Count, o.Latency.SumUs)
	n.AddOutcomes(o.FailedConnects, o.ConnectTimeouts, o.Resets, o.RetransmitTimeouts)
}

// Empty reports whether the nodes said nothing (no answers timed, no failures).
func (n *NodeSignals) Empty() bool {
	return n.Latency.Count == 0 && n.FailedConnects == 0 && n.ConnectTimeouts == 0 && n.Resets == 0 && n.RetransmitTimeouts == 0
}

// Load is fanout's own measurement of one second: the fleet's requests/s and response (rx) bytes/s to the API
// server, summed over every workload from the nodes' kernels.
type Load struct {
	Requests, RxBytes float64
}
