package engine

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/fleet"
)

func reports(sec int64, nodes int, rng *rand.Rand) []*Report {
	var out []*Report
	for i := 0; i < nodes; i++ {
		rate := 1.0
		if sec >= 1060 {
			rate = 12
		}
		out = append(out, &Report{Node: fmt.Sprintf("node-%d", i), Second: sec, Workloads: []WorkloadReport{
			{Workload: "DaemonSet/mon/agent", Pods: 1, Counters: fleet.Counters{Requests: float64(rng.IntN(3)) + rate}},
			{Workload: "Deployment/shop/web", Pods: 2, Counters: fleet.Counters{Requests: float64(rng.IntN(5))}},
		}})
	}
	return out
}

// Replicas receive the same reports in different orders and must decide exactly the same.
func TestReplicasDecideDeterministically(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 1500
	a, b := New(cfg, nil), New(cfg, nil)
	a.Start(1000)
	b.Start(1000)
	rng := rand.New(rand.NewPCG(1, 2))
	shuffle := rand.New(rand.NewPCG(3, 4))
	var da, db []byte
	for sec := int64(1000); sec < 1100; sec++ {
		rs := reports(sec, 200, rng)
		for _, r := range rs {
			if err := a.Ingest(r); err != nil {
				t.Fatal(err)
			}
		}
		shuffle.Shuffle(len(rs), func(i, j int) { rs[i], rs[j] = rs[j], rs[i] })
		for _, r := range rs {
			if err := b.Ingest(r); err != nil {
				t.Fatal(err)
			}
		}
		x, _ := json.Marshal(a.CloseThrough(sec))
		y, _ := json.Marshal(b.CloseThrough(sec))
		da, db = append(da, x...), append(db, y...)
	}
	if string(da) != string(db) {
		t.Fatalf("replicas differ:\n%s\n%s", da, db)
	}
	_, ds := a.Directives()
	if len(ds) != 1 || ds[0].Workload != "DaemonSet/mon/agent" || !ds[0].Block {
		t.Fatalf("want the surging DaemonSet blocked, got %+v", ds)
	}
	st := a.Status()
	if st.NodesReporting != 200 || st.Pairs != 400 {
		t.Fatalf("status: nodes %d pairs %d", st.NodesReporting, st.Pairs)
	}
}

// Agents connecting gradually and a third of the reports missing each second must not look like a rollout, a hot
// workload or an overload.
func TestPartialReportingIsNotARollout(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 3000 // steady load ~2000 req/s from 1000 nodes
	e := New(cfg, nil)
	e.Start(0)
	rng := rand.New(rand.NewPCG(5, 6))
	for sec := int64(0); sec < 300; sec++ {
		connected := min(1000, int(sec)*50) // 20 s to connect everyone
		for i := 0; i < connected; i++ {
			if rng.Float64() < 0.33 {
				continue
			}
			if err := e.Ingest(&Report{Node: fmt.Sprintf("node-%d", i), Second: sec, Workloads: []WorkloadReport{
				{Workload: "DaemonSet/kube-system/agent", Pods: 1, Counters: fleet.Counters{Requests: float64(rng.IntN(3)) + 1}},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range e.CloseThrough(sec) {
			t.Errorf("t=%d %s %s: %s", sec, d.Action, d.Workload, d.Reason)
		}
	}
}

// Agents leave idle pods out of their reports. A DaemonSet doing one request every 20 s per pod must be costed per
// pod present (0.05 req/s), not per pod that happened to send this second (1 req/s), or its projection to full
// placement would be 20x too high.
func TestIdlePodsLeftOutOfReportsAreStillCounted(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 500
	e := New(cfg, nil)
	e.Start(0)
	rng := rand.New(rand.NewPCG(7, 8))
	for sec := int64(0); sec < 200; sec++ {
		for i := 0; i < 1000; i++ {
			r := &Report{Node: fmt.Sprintf("node-%d", i), Second: sec}
			if rng.Float64() < 0.05 {
				r.Workloads = []WorkloadReport{{Workload: "DaemonSet/mon/sparse", Pods: 1, Counters: fleet.Counters{Requests: 1}}}
			}
			if err := e.Ingest(r); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range e.CloseThrough(sec) {
			t.Errorf("t=%d %s %s: %s", sec, d.Action, d.Workload, d.Reason)
		}
	}
	st := e.Status()
	if len(st.Workloads) != 1 || st.Workloads[0].Pods < 990 {
		t.Fatalf("present pods: %+v", st.Workloads)
	}
	if p := st.Workloads[0].ProjectedRatio; p < 0.05 || p > 0.15 {
		t.Fatalf("projected load %.3f, want about 50/500 = 0.1", p)
	}
}
