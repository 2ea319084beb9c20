package ingest

import (
	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/api"
)

// signalTotals sums what one report's workloads say of the API server's answers, to bound the report as a whole.
type signalTotals struct {
	responses, latencyUs uint64
	outcomes             [4]uint64
}

// signals validates a workload's kernel view of the API server's answers (api.WorkloadDelta.response_latency and
// .outcomes) and returns it as the engine's NodeSignals, nil when the agent reported neither. The headroom
// estimator reads them as the nodes' signal of the API server's latency and failures.
func (t *signalTotals) signals(w *api.WorkloadDelta, field string) (*headroom.NodeSignals, error) {
	h, o := w.GetResponseLatency(), w.GetOutcomes()
	if h == nil && o == nil {
		return nil, nil
	}
	var sig headroom.NodeSignals
	if h != nil {
		// The wire contract: receivers read the first headroom.LatencySlots buckets and ignore the rest; the answers
		// counted are those buckets' (the count field of an agent that sends more would include what is ignored).
		buckets := h.GetBuckets()[:min(len(h.GetBuckets()), headroom.LatencySlots)]
		var n uint64
		for _, b := range buckets {
			if b > MaxResponses {
				return nil, bad(field+".response_latency.buckets", "%d answers exceed %d", b, MaxResponses)
			}
			n += b
		}
		sum := h.GetSumUs()
		maxUs := uint64(MaxResponseLatency.Microseconds())
		if t.responses += n; t.responses > MaxResponses {
			return nil, bad(field+".response_latency.count", "the report times %d answers, more than %d", t.responses, MaxResponses)
		}
		if sum > n*maxUs {
			return nil, bad(field+".response_latency.sum_us", "%d us for %d answers: over %s each", sum, n, MaxResponseLatency)
		}
		t.latencyUs += sum
		sig.Latency.Add(buckets, n, sum)
	}
	if o != nil {
		vs := [4]uint64{o.GetFailedConnects(), o.GetConnectTimeouts(), o.GetResets(), o.GetRetransmitTimeouts()}
		for i, v := range vs {
			if t.outcomes[i] += v; v > MaxOutcomes || t.outcomes[i] > MaxOutcomes {
				return nil, bad(field+".outcomes", "%d exceeds %d in the report", t.outcomes[i], MaxOutcomes)
			}
		}
		sig.AddOutcomes(vs[0], vs[1], vs[2], vs[3])
	}
	if sig.Empty() {
		return nil, nil
	}
	return &sig, nil
}
