package replay

import (
	"math"
	"math/rand/v2"
	"time"

	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/aggregator/scenario"
)

// World-model constants: what a real API server and the nodes' kernels show at a given utilization.
const (
	// worldDuration is a normal request's duration at rest (seconds); worldFirstByte the time to first response
	// byte a node's kernel sees at rest.
	worldDuration  = 0.03
	worldFirstByte = 0.004
	// worldRejectFrom: past this utilization the API server rejects (429) part of the demand.
	worldRejectFrom = 1.1
	// worldFailFrom: past this utilization nodes see connection failures and timeouts.
	worldFailFrom = 1.05
)

// world is the simulated API server: its capacity (never shown to the detector in learned mode) and a model of
// the signals it gives: flow-control seats in use rising with utilization (with noise), queueing and wait near
// saturation, request latency rising with utilization, rejections and node-observed failures past saturation, and
// periods in which its metrics cannot be read.
type world struct {
	api      *scenario.APIServer
	rng      *rand.Rand
	interval int64
	rejected float64
}

func newWorld(api *scenario.APIServer, seed uint64) *world {
	iv := int64(api.MetricsInterval / time.Second)
	if iv < 1 {
		iv = int64(scenario.DefaultMetricsInterval / time.Second)
	}
	// A separate random stream: the workloads' traffic is the same whatever the world shows.
	return &world{api: api, rng: rand.New(rand.NewPCG(seed, 0x3091d)), interval: iv}
}

// util is the world's utilization under a load fanout measures (plus the load it does not see).
func (w *world) util(req, rx float64) float64 {
	if !w.api.Known() {
		return 0
	}
	u := 0.0
	if c := w.api.CapacityRequestsPerS; c > 0 {
		u = math.Max(u, req/c)
	}
	if c := w.api.CapacityRxBytesPerS; c > 0 {
		u = math.Max(u, rx/c)
	}
	return u + w.api.BackgroundUtilization
}

// queued is the demand waiting in the API server's queues, in requests, at utilization u.
func (w *world) queued(u float64, limit float64) float64 {
	switch {
	case u >= 1:
		return limit * (0.25 + 2*(u-1))
	case u > 0.8:
		return limit * 0.01 * math.Pow(u, 10) / math.Max(0.03, 1-u)
	}
	return 0
}

// scrape returns what the aggregator reads from the API server's /metrics at second t (utilization u, fanout's
// request rate req), or false when the metrics are not due or unavailable.
func (w *world) scrape(t int64, at time.Time, u, req float64) (headroom.APIServerSample, bool) {
	if !w.api.Known() || t%w.interval != 0 {
		return headroom.APIServerSample{}, false
	}
	limit := float64(w.api.Seats)
	// Rejections accumulate whether or not anyone reads them.
	if u > worldRejectFrom {
		w.rejected += (u - worldRejectFrom) / u * req * float64(w.interval)
	}
	if !w.api.MetricsAvailable(time.Duration(t) * time.Second) {
		return headroom.APIServerSample{}, false
	}
	mean := u * limit
	exec := math.Round(mean + math.Sqrt(mean)*w.rng.NormFloat64())
	exec = math.Max(0, math.Min(limit, exec))
	inq := math.Round(math.Max(0, w.queued(u, limit)*(1+0.1*w.rng.NormFloat64())))
	wait := 0.0005 + 2*inq/limit*worldDuration
	dur := worldDuration/math.Max(0.03, 1-math.Min(u, 0.97))*(1+0.05*w.rng.NormFloat64()) + wait
	s := headroom.APIServerSample{
		Time: at, Replica: "apiserver-0", ExecutingSeats: exec, LimitSeats: limit, InQueue: inq,
		RejectedTotal: math.Round(w.rejected),
		Wait:          headroom.Summary{Count: req * float64(w.interval), Mean: wait, P99: 4 * wait},
		Duration:      headroom.Summary{Count: req * float64(w.interval), Mean: math.Max(0, dur), P99: 4 * math.Max(0, dur)},
	}
	return s, true
}

// nodes returns what the nodes' kernels saw of the API server's answers in one second.
func (w *world) nodes(u, req float64) headroom.NodeSignals {
	var n headroom.NodeSignals
	if !w.api.Known() || req <= 0 {
		return n
	}
	lat := worldFirstByte / math.Max(0.03, 1-math.Min(u, 0.97)) * math.Max(0.5, 1+0.05*w.rng.NormFloat64())
	count := uint64(req)
	us := lat * 1e6
	b := 0
	if us >= 1 {
		b = min(headroom.LatencySlots-1, int(math.Log2(us)))
	}
	n.Latency.Buckets[b] = count
	n.Latency.Count = count
	n.Latency.SumUs = uint64(us * float64(count))
	if u > worldFailFrom {
		f := (u - worldFailFrom) * 0.05 * req
		n.FailedConnects = uint64(f)
		n.ConnectTimeouts = uint64(f / 2)
		n.Resets = uint64(f / 4)
	}
	return n
}
