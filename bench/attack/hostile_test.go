package main

import (
	"strings"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/ingest"
)

// Each hostile kind meets the defence it was written for: too wide and the pods bypass are invalid, the valid kind is
// the most a report may carry, the 1 ns claim lands in its second and is scaled by 2 at most, and names never repeat.
func TestHostileKinds(t *testing.T) {
	h := newHostile("evil-0", 10_000)
	const sec = 1_000_000
	for _, k := range []struct{ kind, err string }{{kindWide, "workloads"}, {kindBypass, "pods name more than"}} {
		if _, err := ingest.Convert(h.report(k.kind, sec)); err == nil || !strings.Contains(err.Error(), k.err) {
			t.Errorf("%s: %v, want an error about %q", k.kind, err, k.err)
		}
	}
	valid, err := ingest.Convert(h.report(kindValid, sec))
	if err != nil {
		t.Fatalf("%s: %v", kindValid, err)
	}
	if valid.Second != sec || len(valid.Workloads) != maxValidWls || valid.Workloads[0].Pods != 2 {
		t.Errorf("%s: second %d, %d workloads, %d pods each", kindValid, valid.Second, len(valid.Workloads), valid.Workloads[0].Pods)
	}
	tiny, err := ingest.Convert(h.report(kindTinyIvl, sec))
	if err != nil {
		t.Fatalf("%s: %v", kindTinyIvl, err)
	}
	if tiny.Second != sec || len(tiny.Workloads) != 1 || tiny.Workloads[0].Workload != ingest.Unattributed || tiny.Workloads[0].Counters.Requests != 20_000 {
		t.Errorf("%s: second %d, %+v; want second %d, one %s entry at 20000 req/s", kindTinyIvl, tiny.Second, tiny.Workloads, sec, ingest.Unattributed)
	}
	again := newHostile("evil-0", 10)
	uids, wls := map[string]bool{}, map[string]bool{}
	for range 3 {
		r := again.report(kindValid, sec)
		for _, p := range r.GetPods() {
			if uids[p.GetUid()] {
				t.Fatalf("pod %q repeated", p.GetUid())
			}
			uids[p.GetUid()] = true
		}
		for _, w := range r.GetWorkloads() {
			if wls[w.GetWorkload()] {
				t.Fatalf("workload %q repeated", w.GetWorkload())
			}
			wls[w.GetWorkload()] = true
		}
	}
}
