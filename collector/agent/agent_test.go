package agent

import (
	"context"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/identity"
	"github.com/fanoutdev/fanout/collector/probe"
)

type fakeSrc struct{ m map[uint64]probe.Counters }

func (f *fakeSrc) ReadCounters() (map[uint64]probe.Counters, error) {
	out := map[uint64]probe.Counters{}
	for k, v := range f.m {
		out[k] = v
	}
	return out, nil
}
func (f *fakeSrc) Pressure() ([]probe.MapPressure, error) {
	return []probe.MapPressure{{Map: "traffic_counters", Entries: len(f.m), MaxEntries: 16384}}, nil
}

type fakePaths map[uint64]string

func (f fakePaths) Path(id uint64) (string, bool) { p, ok := f[id]; return p, ok }

type fakePods map[string]identity.PodIdentity

func (f fakePods) PodByUID(uid string) (identity.PodIdentity, bool) { p, ok := f[uid]; return p, ok }

func TestTickDeltasAndAttribution(t *testing.T) {
	const uidA, uidB = "0f4f1ab2-5c1d-4f7e-9d7b-1c2d3e4f5a6b", "1f4f1ab2-5c1d-4f7e-9d7b-1c2d3e4f5a6b"
	paths := fakePaths{
		10: "/kubepods/besteffort/pod" + uidA + "/c1",
		11: "/kubepods/besteffort/pod" + uidA + "/c2",
		12: "/kubepods/burstable/pod" + uidB + "/c1",
		13: "/system.slice/kubelet.service",
	}
	pods := fakePods{
		uidA: {UID: uidA, Namespace: "default", Name: "web-1", Workload: "Deployment/default/web"},
		uidB: {UID: uidB, Namespace: "default", Name: "web-2", Workload: "Deployment/default/web"},
	}
	// Pinned counters from before the agent started: must not be reported.
	src := &fakeSrc{m: map[uint64]probe.Counters{10: {TxSegments: 100, TxBytes: 1e6}}}
	a := New(Config{NodeName: "n1"}, src, paths, pods, nil)
	t0 := time.Unix(1000, 0)
	if s, err := a.Tick(t0); err != nil || s != nil {
		t.Fatalf("first tick: %v %v", s, err)
	}
	src.m = map[uint64]probe.Counters{
		10: {TxSegments: 103, TxBytes: 1e6 + 300, RxBytes: 50, TxPackets: 4, RxPackets: 2, Connects: 1},
		11: {TxSegments: 2, TxBytes: 20},
		12: {TxSegments: 1, TxBytes: 10},
		13: {TxSegments: 5, TxBytes: 5},
		99: {TxSegments: 7},
	}
	s, err := a.Tick(t0.Add(time.Second))
	if err != nil || s == nil {
		t.Fatal(s, err)
	}
	if s.Seq != 1 || s.Node != "n1" || s.Interval != time.Second {
		t.Fatalf("header %+v", s)
	}
	want := map[string]Counts{
		uidA: {Connects: 1, Requests: 5, TxBytes: 320, RxBytes: 50, Packets: 6},
		uidB: {Requests: 1, TxBytes: 10},
	}
	if len(s.Pods) != 2 {
		t.Fatalf("pods %+v", s.Pods)
	}
	for _, p := range s.Pods {
		if p.Counts != want[p.UID] {
			t.Errorf("pod %s: %+v, want %+v", p.UID, p.Counts, want[p.UID])
		}
	}
	wl := map[string]WorkloadDelta{}
	for _, w := range s.Workloads {
		wl[w.Workload] = w
	}
	if w := wl["Deployment/default/web"]; w.Pods != 2 || w.Requests != 6 || w.TxBytes != 330 {
		t.Errorf("workload web %+v", w)
	}
	if w := wl["SystemdUnit//kubelet.service"]; w.Requests != 5 {
		t.Errorf("kubelet %+v", w)
	}
	if w := wl["Unknown//cgroup-99"]; w.Requests != 7 {
		t.Errorf("unknown %+v", w)
	}
	// Second tick with no change: empty snapshot; totals stay.
	s, _ = a.Tick(t0.Add(2 * time.Second))
	if len(s.Pods) != 0 || len(s.Workloads) != 0 || s.Seq != 2 {
		t.Fatalf("idle tick %+v", s)
	}
	st, err := a.MetricsState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Pods) != 2 || st.UnknownCgroups != 1 || len(st.Maps) != 1 {
		t.Fatalf("state %+v", st)
	}
}

func TestPublishDropsOldest(t *testing.T) {
	a := New(Config{}, &fakeSrc{}, fakePaths{}, fakePods{}, nil)
	for i := 1; i <= 20; i++ {
		a.publish(Snapshot{Seq: uint64(i)})
	}
	if s := <-a.Snapshots(); s.Seq != 5 {
		t.Fatalf("oldest kept %d, want 5", s.Seq)
	}
}

// countingPaths counts lookups: a miss costs the real resolver a walk of the cgroup tree.
type countingPaths struct {
	fakePaths
	lookups map[uint64]int
}

func (c *countingPaths) Path(id uint64) (string, bool) {
	c.lookups[id]++
	return c.fakePaths.Path(id)
}

// The overflow bucket (cgroup id 0, always in the counter map) is the overflow's: it is never looked up as a cgroup
// (every tick would rescan the tree) and is not an unknown cgroup; its counts still reach the report.
func TestOverflowBucketIsNotAnUnknownCgroup(t *testing.T) {
	paths := &countingPaths{fakePaths: fakePaths{}, lookups: map[uint64]int{}}
	src := &fakeSrc{m: map[uint64]probe.Counters{probe.OverflowCgroup: {}}}
	a := New(Config{NodeName: "n1"}, src, paths, fakePods{}, nil)
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		src.m = map[uint64]probe.Counters{probe.OverflowCgroup: {TxSegments: uint64(3 * i)}}
		if _, err := a.Tick(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if n := paths.lookups[probe.OverflowCgroup]; n != 0 {
		t.Errorf("overflow bucket looked up as a cgroup %d times", n)
	}
	st, err := a.MetricsState(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.UnknownCgroups != 0 {
		t.Errorf("unknown cgroups %d, want 0 (the overflow bucket is not one)", st.UnknownCgroups)
	}
	var got uint64
	for _, w := range st.Workloads {
		if w.Workload == identity.UnknownWorkload(probe.OverflowCgroup) {
			got = w.Requests
		}
	}
	if got != 12 {
		t.Errorf("overflow requests %d, want 12", got)
	}
}
