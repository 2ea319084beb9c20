package blockmap_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
)

// Exemptions live in the pinned blocked_exempt map: another opener sees them, expired ones are pruned, an explicit
// block clears a pod's exemption by cgroup id or pod UID.
func TestExemptionsPinned(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	dir := enforcetest.PinDir(t)
	m, err := blockmap.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	now, err := blockmap.BootNow()
	if err != nil {
		t.Fatal(err)
	}
	live := blockmap.Exemption{PodUID: "abcd-1", Workload: "Deployment/default/web", ExpiresBootNs: blockmap.ExpiresIn(now, time.Minute)}
	for id, x := range map[uint64]blockmap.Exemption{
		1: live,
		2: {PodUID: "abcd-2", ExpiresBootNs: now - 1}, // already expired
		3: {PodUID: "ABCD-3", ExpiresBootNs: blockmap.ExpiresIn(now, time.Minute)},
	} {
		if err := m.PutExempt(id, x); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.PutExempt(4, blockmap.Exemption{Workload: strings.Repeat("x", blockmap.MaxWorkloadName)}); err == nil {
		t.Fatal("over-long workload name accepted")
	}

	m2, err := blockmap.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	all, err := m2.ListExempt()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[1] != live || all[3].PodUID != "abcd-3" {
		t.Fatalf("ListExempt = %+v", all)
	}
	active, expired, err := m2.PruneExempt(now)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 2 || len(expired) != 1 || expired[2].PodUID != "abcd-2" {
		t.Fatalf("PruneExempt: active %+v expired %+v", active, expired)
	}
	if n, err := m.ClearExempt(77, "Abcd-3"); err != nil || n != 1 {
		t.Fatalf("ClearExempt by pod UID: %d, %v", n, err)
	}
	if n, err := m.ClearExempt(1, ""); err != nil || n != 1 {
		t.Fatalf("ClearExempt by cgroup id: %d, %v", n, err)
	}
	if all, _ := m.ListExempt(); len(all) != 0 {
		t.Fatalf("left after clearing: %+v", all)
	}
	if err := m.DeleteExempt(1); err != nil {
		t.Fatalf("delete absent exemption: %v", err)
	}
}
