package apiserverstats

import (
	"math"
	"sort"

	"github.com/fanoutdev/fanout/aggregator/headroom"
)

// Sample converts the reading into the headroom estimator's input.
func (r *Reading) Sample() headroom.APIServerSample {
	return headroom.APIServerSample{
		Time: r.At, Replica: r.Replica,
		ExecutingSeats: r.ExecutingSeats, LimitSeats: r.NominalSeats, InQueue: r.Inqueue,
		RejectedTotal: r.RejectedTotal,
		Wait:          summary(r.Wait), Duration: summary(r.Latency),
		Latencies: kinds(r.Kinds),
	}
}

// kinds converts per-kind readings, at most headroom.MaxLatencyKeys of them (the busiest).
func kinds(ks []KindReading) []headroom.KeyedLatency {
	if len(ks) == 0 {
		return nil
	}
	if len(ks) > headroom.MaxLatencyKeys {
		ks = append([]KindReading(nil), ks...)
		sort.Slice(ks, func(i, j int) bool { return ks[i].Count > ks[j].Count })
		ks = ks[:headroom.MaxLatencyKeys]
	}
	out := make([]headroom.KeyedLatency, 0, len(ks))
	for _, k := range ks {
		key := k.Key
		if len(key) > headroom.MaxLatencyKeyBytes {
			key = key[:headroom.MaxLatencyKeyBytes]
		}
		out = append(out, headroom.KeyedLatency{Key: key, Count: k.Count, Mean: math.Min(k.Sum/k.Count, 3600)})
	}
	return out
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
