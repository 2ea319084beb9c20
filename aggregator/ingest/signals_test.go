package ingest

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/api"
)

func reportWithSignals(h *api.LatencyHistogram, o *api.ConnOutcomes) *api.NodeReport {
	return &api.NodeReport{
		Node: "node-1", Sequence: 1, Timestamp: timestamppb.New(time.Unix(1000, 0)), Interval: durationpb.New(time.Second),
		Workloads: []*api.WorkloadDelta{
			{Workload: "DaemonSet/monitoring/agent", Delta: &api.Counters{Requests: 10}, ResponseLatency: h, Outcomes: o},
			{Workload: "Deployment/ns/web", Delta: &api.Counters{Requests: 1}},
		},
	}
}

// The kernel's view of the API server's answers that agents report per workload reaches the engine.
func TestConvertCarriesNodeSignals(t *testing.T) {
	h := &api.LatencyHistogram{Buckets: []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 6}, Count: 10, SumUs: 25_000}
	o := &api.ConnOutcomes{FailedConnects: 2, ConnectTimeouts: 1, Resets: 3, RetransmitTimeouts: 4}
	r, err := Convert(reportWithSignals(h, o))
	if err != nil {
		t.Fatal(err)
	}
	sig := r.Workloads[0].Signals
	if sig == nil {
		t.Fatal("no signals for a workload that reported latency and outcomes")
	}
	if sig.Latency.Count != 10 || sig.Latency.SumUs != 25_000 || sig.Latency.Buckets[10] != 4 || sig.Latency.Buckets[11] != 6 {
		t.Errorf("latency %+v", sig.Latency)
	}
	if sig.FailedConnects != 2 || sig.ConnectTimeouts != 1 || sig.Resets != 3 || sig.RetransmitTimeouts != 4 {
		t.Errorf("outcomes %+v", sig)
	}
	if r.Workloads[1].Signals != nil {
		t.Errorf("a workload that reported neither has signals %+v", r.Workloads[1].Signals)
	}
}

// Buckets past the 32 the contract defines are ignored, and the answers counted are the buckets read.
func TestConvertIgnoresBucketsPastTheContract(t *testing.T) {
	b := make([]uint64, 40)
	b[5], b[35] = 3, 1000
	r, err := Convert(reportWithSignals(&api.LatencyHistogram{Buckets: b, Count: 1003, SumUs: 300}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if l := r.Workloads[0].Signals.Latency; l.Count != 3 || l.Buckets[5] != 3 {
		t.Errorf("latency %+v, want the 3 answers of the first 32 buckets", l)
	}
}

func TestConvertBoundsNodeSignals(t *testing.T) {
	many := &api.NodeReport{Node: "node-1", Sequence: 1, Timestamp: timestamppb.New(time.Unix(1000, 0))}
	for i := range 3 {
		many.Workloads = append(many.Workloads, &api.WorkloadDelta{Workload: "Deployment/ns/w" + string(rune('a'+i)),
			ResponseLatency: &api.LatencyHistogram{Buckets: []uint64{MaxResponses / 2}, Count: MaxResponses / 2}})
	}
	for name, tc := range map[string]struct {
		r    *api.NodeReport
		want string
	}{
		"bucket":      {reportWithSignals(&api.LatencyHistogram{Buckets: []uint64{MaxResponses + 1}}, nil), "response_latency.buckets"},
		"report sum":  {many, "workloads[2].response_latency.count"},
		"latency sum": {reportWithSignals(&api.LatencyHistogram{Buckets: []uint64{2}, Count: 2, SumUs: 2*uint64(MaxResponseLatency.Microseconds()) + 1}, nil), "response_latency.sum_us"},
		"outcomes":    {reportWithSignals(nil, &api.ConnOutcomes{Resets: MaxOutcomes + 1}), "outcomes"},
	} {
		_, err := Convert(tc.r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
}

// End to end through the engine: what the nodes report of the API server's latency is what the headroom estimator
// reads as the nodes' signal (it was never fed by live reports, only by replay).
func TestNodeSignalsReachHeadroom(t *testing.T) {
	eng := engine.New(engine.DefaultConfig(), nil)
	if u := eng.Headroom().UtilizationNodes; u != -1 {
		t.Fatalf("nodes' utilization %v before any report, want -1", u)
	}
	for sec := int64(0); sec < 5; sec++ {
		rep := reportWithSignals(&api.LatencyHistogram{Buckets: []uint64{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10}, Count: 10, SumUs: 15_000}, nil)
		rep.Sequence = uint64(sec + 1)
		rep.Timestamp = timestamppb.New(time.Unix(1000+sec, 5e8))
		r, err := Convert(rep)
		if err != nil {
			t.Fatal(err)
		}
		if sec == 0 {
			eng.Start(r.Second - 1)
		}
		if err := eng.Ingest(r); err != nil {
			t.Fatal(err)
		}
		eng.CloseThrough(r.Second)
	}
	if u := eng.Headroom().UtilizationNodes; u < 0 {
		t.Errorf("nodes' utilization %v after reports with latency, want a reading", u)
	}
}
