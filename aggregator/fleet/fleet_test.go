package fleet

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestWindowsRejectLateFutureAndStale(t *testing.T) {
	f := New(DefaultConfig())
	n := f.Node("node-a")
	f.Start(100)
	if err := f.AddNode(100, n, 5); err != nil {
		t.Fatal(err)
	}
	if err := f.AddNode(101, n, 5); !errors.Is(err, ErrStaleSequence) {
		t.Fatalf("repeated sequence: %v", err)
	}
	if err := f.AddNode(101, n, 1); err != nil { // agent restart
		t.Fatal(err)
	}
	f.Close() // closes 100
	if err := f.AddNode(100, n, 2); !errors.Is(err, ErrLate) {
		t.Fatalf("late: %v", err)
	}
	if err := f.AddNode(100+ring+1, n, 3); !errors.Is(err, ErrFuture) {
		t.Fatalf("future: %v", err)
	}
}

// Per-node jumps against each node's own baseline are counted; state is per (workload, node) and forgotten.
func TestSynchronizedNodesAndBoundedState(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Forget = 10 * time.Second
	f := New(cfg)
	w := f.Workload("DaemonSet/a/x")
	nodes := make([]NodeID, 50)
	for i := range nodes {
		nodes[i] = f.Node(fmt.Sprintf("n%d", i))
	}
	f.Start(0)
	var snap *Snapshot
	for sec := int64(0); sec < 80; sec++ {
		for i, n := range nodes {
			req := 1.0 + float64(i%3)
			if sec >= 60 && i < 20 {
				req *= 10
			}
			if err := f.AddNode(sec, n, 0); err != nil {
				t.Fatal(err)
			}
			f.Add(sec, n, Sample{Workload: w, Counters: Counters{Requests: req}, Pods: 1})
		}
		snap = f.Close()
		if sec == 59 && snap.Workloads[0].SyncNodes != 0 {
			t.Fatalf("jumps before the surge: %d", snap.Workloads[0].SyncNodes)
		}
		if sec == 61 && (snap.Workloads[0].SyncNodes != 20 || snap.Workloads[0].EstablishedNodes != 50) {
			t.Fatalf("at 61: sync %d of %d, want 20 of 50", snap.Workloads[0].SyncNodes, snap.Workloads[0].EstablishedNodes)
		}
	}
	if f.Pairs() != 50 {
		t.Fatalf("pairs %d", f.Pairs())
	}
	// Jumps older than the surge window no longer count as synchronized.
	if snap.Workloads[0].SyncNodes != 20 {
		t.Fatalf("at 79: sync %d", snap.Workloads[0].SyncNodes)
	}
	for sec := int64(80); sec < 95; sec++ {
		f.Close()
	}
	if f.Pairs() != 0 {
		t.Fatalf("pairs not forgotten: %d", f.Pairs())
	}
}

// Reports arrive ahead of the second the fleet closes next (the engine closes a second only after a grace, so a
// node's report for the next second often comes first). A (workload, node) pair born from such a report belongs to
// the fleet from then on: with real (Unix) seconds, a new pair's zero last-seen second read as long forgotten, and
// closing the earlier second deleted it together with the report it held, on every report again.
func TestPairsBornAheadOfTheClosedSecond(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Warmup = 5 * time.Second
	f := New(cfg)
	w := f.Workload("DaemonSet/kube-system/kube-proxy")
	const nodes = 8
	ids := make([]NodeID, nodes)
	for i := range ids {
		ids[i] = f.Node(fmt.Sprintf("node-%d", i))
	}
	const start = int64(1_796_653_444)
	f.Start(start)
	report := func(sec int64, n NodeID) {
		if err := f.AddNode(sec, n, 0); err != nil {
			t.Fatal(err)
		}
		f.Add(sec, n, Sample{Workload: w, Counters: Counters{Requests: 2}, Pods: 1})
	}
	var s *Snapshot
	for sec := start; sec < start+20; sec++ {
		for i, n := range ids {
			// Some nodes report the second being closed; the others are already a second or two ahead of it.
			report(sec+int64(i%3), n)
		}
		s = f.Close()
	}
	v := workloadView(t, s, "DaemonSet/kube-system/kube-proxy")
	if v.Pods != nodes || v.Nodes != nodes || v.EstablishedNodes != nodes || f.Pairs() != nodes {
		t.Fatalf("pods %d on %d nodes, %d established, %d pairs: want %d of each", v.Pods, v.Nodes, v.EstablishedNodes, f.Pairs(), nodes)
	}
	if v.Now.Requests != 2*nodes {
		t.Fatalf("requests %g: want %d (no report lost)", v.Now.Requests, 2*nodes)
	}
}

// workloadView is the snapshot's view of the named workload.
func workloadView(t *testing.T, s *Snapshot, name string) View {
	t.Helper()
	for _, v := range s.Workloads {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no view of %s", name)
	return View{}
}

// A workload rolled out while baselines are paused (the API server overloaded) learns no baseline from its own
// overload: it stays without one, marked as arrived, until baselines resume. One that was there when watching
// began is not "arrived".
func TestPausedBaselinesAndArrivals(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Warmup = 5 * time.Second
	f := New(cfg)
	old, roll := f.Workload("DaemonSet/a/old"), f.Workload("DaemonSet/a/rollout")
	n := f.Node("n1")
	f.Start(0)
	step := func(sec int64, withRollout bool) *Snapshot {
		if err := f.AddNode(sec, n, 0); err != nil {
			t.Fatal(err)
		}
		f.Add(sec, n, Sample{Workload: old, Counters: Counters{Requests: 10}, Pods: 1})
		if withRollout {
			f.Add(sec, n, Sample{Workload: roll, Counters: Counters{Requests: 500, RxBytes: 1e6}, Pods: 1})
		}
		return f.Close()
	}
	var s *Snapshot
	for sec := int64(0); sec < 20; sec++ {
		s = step(sec, false)
	}
	if v := workloadView(t, s, "DaemonSet/a/old"); !v.BaseKnown || v.Arrived || v.BaseRequests != 10 {
		t.Fatalf("old workload %+v: want a baseline of 10 and not arrived", v)
	}
	f.PauseBaselines(true)
	for sec := int64(20); sec < 40; sec++ {
		s = step(sec, true)
	}
	if v := workloadView(t, s, "DaemonSet/a/rollout"); v.BaseKnown || !v.Arrived || v.BaseRequests != 0 {
		t.Fatalf("rollout during the overload %+v: want no baseline, arrived", v)
	}
	f.PauseBaselines(false)
	for sec := int64(40); sec < 50; sec++ {
		s = step(sec, true)
	}
	if v := workloadView(t, s, "DaemonSet/a/rollout"); !v.BaseKnown || v.BaseRequests != 500 {
		t.Fatalf("rollout after the overload %+v: want its baseline learned", v)
	}
}

// While the API server reads busy, a workload that arrived while the fleet was watched learns no baseline (its first
// seconds in a degrading API server are not its normal); workloads already running keep learning.
func TestPauseArrivedBaselines(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Warmup = 5 * time.Second
	f := New(cfg)
	old, roll := f.Workload("DaemonSet/a/old"), f.Workload("DaemonSet/a/rollout")
	n := f.Node("n1")
	f.Start(0)
	var s *Snapshot
	step := func(sec int64, oldReq float64, withRollout bool) {
		if err := f.AddNode(sec, n, 0); err != nil {
			t.Fatal(err)
		}
		f.Add(sec, n, Sample{Workload: old, Counters: Counters{Requests: oldReq}, Pods: 1})
		if withRollout {
			f.Add(sec, n, Sample{Workload: roll, Counters: Counters{Requests: 500}, Pods: 1})
		}
		s = f.Close()
	}
	for sec := int64(0); sec < 20; sec++ {
		step(sec, 10, false)
	}
	f.PauseArrivedBaselines(true)
	for sec := int64(20); sec < 40; sec++ {
		step(sec, 12, true)
	}
	if v := workloadView(t, s, "DaemonSet/a/rollout"); v.BaseKnown || !v.Arrived {
		t.Fatalf("rollout while the API server reads busy %+v: want arrived, no baseline", v)
	}
	if v := workloadView(t, s, "DaemonSet/a/old"); !v.BaseKnown || v.BaseRequests <= 10 {
		t.Fatalf("workload running before %+v: want it still learning (base above 10)", v)
	}
	f.PauseArrivedBaselines(false)
	for sec := int64(40); sec < 50; sec++ {
		step(sec, 12, true)
	}
	if v := workloadView(t, s, "DaemonSet/a/rollout"); !v.BaseKnown || v.BaseRequests != 500 {
		t.Fatalf("rollout once the API server is calm %+v: want its baseline learned", v)
	}
}
