package metrics

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

type probeSourceFunc func() ProbeState

func (f probeSourceFunc) ProbeState(context.Context) ProbeState { return f() }

// The kernel's log2 microsecond buckets become a Prometheus histogram: bucket i's upper bound is 2^(i+1) us, counts
// are cumulative, the last kernel bucket is open-ended (+Inf only), the sum is in seconds.
func TestProbeLatencyHistogram(t *testing.T) {
	buckets := make([]uint64, 28)
	buckets[0], buckets[3], buckets[12], buckets[27] = 1, 4, 2, 1 // <2us, [8,16)us, [4096,8192)us, >= 2^27us
	st := ProbeState{Mode: "sockops", Workloads: []WorkloadHealth{{Workload: "DaemonSet/mon/agent", Buckets: buckets,
		SumUs: 150_000_000, FailedConnects: 3, ConnectTimeouts: 1, Resets: 2, RetransmitTimeouts: 5}}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewProbeCollector(probeSourceFunc(func() ProbeState { return st }), nil))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var h *dto.Histogram
	for _, mf := range mfs {
		if mf.GetName() == "fanout_workload_api_response_latency_seconds" {
			h = mf.GetMetric()[0].GetHistogram()
		}
	}
	if h == nil {
		t.Fatal("no latency histogram")
	}
	if h.GetSampleCount() != 8 || math.Abs(h.GetSampleSum()-150) > 1e-9 {
		t.Fatalf("count %d sum %g, want 8 and 150 s", h.GetSampleCount(), h.GetSampleSum())
	}
	if len(h.GetBucket()) != 27 {
		t.Fatalf("%d finite buckets, want 27 (the last kernel bucket is +Inf only)", len(h.GetBucket()))
	}
	want := map[float64]uint64{2e-6: 1, 8e-6: 1, 16e-6: 5, 4096e-6: 5, 8192e-6: 7, math.Ldexp(1, 27) / 1e6: 7}
	for _, b := range h.GetBucket() {
		if n, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != n {
			t.Errorf("le=%g: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), n)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP fanout_agent_probe_mode 1 for the traffic probe design that runs: sockops (per-socket, API sockets only) or cgroup_skb (fallback).
# TYPE fanout_agent_probe_mode gauge
fanout_agent_probe_mode{mode="sockops"} 1
# HELP fanout_workload_api_connect_timeouts_total Failed API-server connects that timed out (SYN retransmitted or ETIMEDOUT).
# TYPE fanout_workload_api_connect_timeouts_total counter
fanout_workload_api_connect_timeouts_total{workload="DaemonSet/mon/agent"} 1
# HELP fanout_workload_api_retransmit_timeouts_total Retransmission timeouts on established API-server connections of the workload.
# TYPE fanout_workload_api_retransmit_timeouts_total counter
fanout_workload_api_retransmit_timeouts_total{workload="DaemonSet/mon/agent"} 5
`), "fanout_agent_probe_mode", "fanout_workload_api_connect_timeouts_total", "fanout_workload_api_retransmit_timeouts_total"); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %+v", err, problems)
	}
}

// A node with more workloads than MaxHealthWorkloads exports the busiest MaxHealthWorkloads-1 under their names and
// sums the rest into workload="other": the label's cardinality is bounded and no response or failure is lost.
func TestProbeWorkloadCardinalityBounded(t *testing.T) {
	const n = 1000
	ws := make([]WorkloadHealth, n)
	var responses, failed uint64
	for i := range ws {
		b := make([]uint64, 28)
		b[i%28] = uint64(i + 1) // workload i has i+1 responses: the busiest are the highest i
		ws[i] = WorkloadHealth{Workload: fmt.Sprintf("Deployment/ns/w%04d", i), Buckets: b, SumUs: uint64(i), FailedConnects: 1}
		responses += uint64(i + 1)
		failed++
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewProbeCollector(probeSourceFunc(func() ProbeState { return ProbeState{Mode: "sockops", Workloads: ws} }), nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	var gotResponses, gotFailed uint64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "workload" {
					labels[l.GetValue()] = true
				}
			}
			switch mf.GetName() {
			case "fanout_workload_api_response_latency_seconds":
				gotResponses += m.GetHistogram().GetSampleCount()
			case "fanout_workload_api_failed_connects_total":
				gotFailed += uint64(m.GetCounter().GetValue())
			}
		}
	}
	if len(labels) != MaxHealthWorkloads || !labels["other"] {
		t.Fatalf("%d workload labels (other: %v), want %d including other", len(labels), labels["other"], MaxHealthWorkloads)
	}
	if !labels[fmt.Sprintf("Deployment/ns/w%04d", n-1)] || labels["Deployment/ns/w0000"] {
		t.Errorf("the busiest workloads must keep their names, the quietest go to other")
	}
	if gotResponses != responses || gotFailed != failed {
		t.Errorf("responses %d failed %d, want %d and %d (nothing lost in other)", gotResponses, gotFailed, responses, failed)
	}
}
