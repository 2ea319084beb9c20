package fleet

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A node that reports the same second twice is refused the second time (with or without sequences), and the node
// is counted once for that second.
func TestRepeatedSecondRejected(t *testing.T) {
	f := New(DefaultConfig())
	n := f.Node("node-a")
	w := f.Workload("Deployment/a/web")
	f.Start(100)
	add := func(seq uint64) error {
		if err := f.AddNode(100, n, seq); err != nil {
			return err
		}
		f.Add(100, n, Sample{Workload: w, Counters: Counters{Requests: 100}, Pods: 1})
		return nil
	}
	if err := add(1); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{2, 1, 0} { // next sequence, an agent restart, no sequence (replay)
		if err := add(seq); !errors.Is(err, ErrDuplicateSecond) {
			t.Fatalf("repeated second with sequence %d: %v, want %v", seq, err, ErrDuplicateSecond)
		}
	}
	s := f.Close()
	if s.NodesReporting != 1 || len(s.Workloads) != 1 || s.Workloads[0].Now.Requests != 100 {
		t.Fatalf("nodes %d, workloads %+v; want one node and 100 requests, not summed repeats", s.NodesReporting, s.Workloads)
	}
	if err := f.AddNode(101, n, 3); err != nil {
		t.Fatalf("next second: %v", err)
	}
}

// With MaxWorkloads set, a stream of fresh names cannot grow the name table: new names beyond the bound go to
// Overflow until names idle past Forget are evicted and their IDs reused; active and frozen names are kept.
func TestIdleNamesEvictedAtMaxWorkloads(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Forget = 5 * time.Second
	cfg.MaxWorkloads = 200
	f := New(cfg)
	n := f.Node("node-a")
	keep := f.Workload("Deployment/keep/active")
	frozen := f.Workload("Deployment/keep/frozen")
	f.Freeze(frozen, true)
	f.Start(0)
	overflow, admittedLate := 0, 0
	for sec := int64(0); sec < 120; sec++ {
		if err := f.AddNode(sec, n, 0); err != nil {
			t.Fatal(err)
		}
		f.Add(sec, n, Sample{Workload: keep, Counters: Counters{Requests: 1}, Pods: 1})
		for i := range 50 {
			id := f.Workload(fmt.Sprintf("Deployment/fresh/s%d-%d", sec, i))
			if f.WorkloadName(id) == Overflow {
				overflow++
			} else if sec >= 60 {
				admittedLate++
			}
			f.Add(sec, n, Sample{Workload: id, Counters: Counters{Requests: 1}, Pods: 1})
		}
		if f.Live() > cfg.MaxWorkloads+1 || len(f.workloads) > cfg.MaxWorkloads+1 || len(f.wids) > cfg.MaxWorkloads+1 {
			t.Fatalf("second %d: %d names live, %d slots, %d interned; bound %d (+%s)", sec, f.Live(), len(f.workloads), len(f.wids),
				cfg.MaxWorkloads, Overflow)
		}
		f.Close()
	}
	if overflow == 0 {
		t.Fatal("no name went to " + Overflow + " while the table was full")
	}
	if admittedLate == 0 {
		t.Fatal("no fresh name admitted after the table filled: idle names were not evicted")
	}
	if f.WorkloadName(keep) != "Deployment/keep/active" || f.WorkloadName(frozen) != "Deployment/keep/frozen" ||
		f.Workload("Deployment/keep/active") != keep || f.Workload("Deployment/keep/frozen") != frozen {
		t.Fatal("an active or frozen workload was evicted")
	}
	// Once everything else has been idle past Forget, a fresh name gets a real slot again.
	for range 10 {
		if err := f.AddNode(f.lastClosed+1, n, 0); err != nil {
			t.Fatal(err)
		}
		f.Add(f.lastClosed+1, n, Sample{Workload: keep, Counters: Counters{Requests: 1}, Pods: 1})
		f.Close()
	}
	if id := f.Workload("Deployment/fresh/after-idle"); f.WorkloadName(id) != "Deployment/fresh/after-idle" {
		t.Fatalf("fresh name after idle period: got %q", f.WorkloadName(id))
	}
}
