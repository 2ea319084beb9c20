package apiserverstats

import (
	"math"

	"github.com/fanoutdev/fanout/aggregator/headroom"
)

// Sample converts the reading into the headroom estimator's input.
func (r *Reading) Sample() headroom.APIServerSample {
	return headroom.APIServerSample{
		Time: r.At, Replica: r.Replica,
		ExecutingSeats: r.ExecutingSeats, LimitSeats: r.NominalSeats, InQueue: r.Inqueue,
		RejectedTotal: r.RejectedTotal,
		Wait:          summary(r.Wait), Duration: summary(r.Latency),
	}
}

func summary(h Histogram) headroom.Summary {
	if h.Count <= 0 {
		return headroom.Summary{}
	}
	p99 := h.Quantile(0.99)
	if math.IsNaN(p99) {
		p99 = 0
	}
	return headroom.Summary{Count: h.Count, Mean: h.Mean(), P99: p99}
}
