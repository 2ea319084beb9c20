package blockmap_test

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
)

func TestPutListDeleteCompact(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	dir := enforcetest.PinDir(t)

	m, err := blockmap.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if on, _ := m.ActiveFlag(); on {
		t.Fatal("fresh maps: active flag set")
	}
	now, err := blockmap.BootNow()
	if err != nil {
		t.Fatal(err)
	}
	e := blockmap.Entry{ExpiresBootNs: blockmap.ExpiresIn(now, time.Minute), WorkloadHash: blockmap.WorkloadHash("Pod/a/b")}
	if err := m.Put(42, e); err != nil {
		t.Fatal(err)
	}
	if on, _ := m.ActiveFlag(); !on {
		t.Fatal("Put did not set blocked_active")
	}

	// A second opener (the CLI) sees the same state.
	m2, err := blockmap.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	got, err := m2.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[42] != e {
		t.Fatalf("List = %+v, want {42: %+v}", got, e)
	}
	if clear, err := m2.Compact(); err != nil || clear {
		t.Fatalf("Compact with an entry: clear=%v err=%v", clear, err)
	}
	if err := m2.Delete(42); err != nil {
		t.Fatal(err)
	}
	if err := m2.Delete(42); err != nil {
		t.Fatalf("delete absent: %v", err)
	}
	if clear, err := m.Compact(); err != nil || !clear {
		t.Fatalf("Compact when empty: clear=%v err=%v", clear, err)
	}
	if on, _ := m.ActiveFlag(); on {
		t.Fatal("Compact left blocked_active set")
	}

	rec := blockmap.WorkloadRecord{ExpiresBootNs: 7, RampEndBootNs: 9, Flags: blockmap.FlagReleasing}
	if err := m.PutWorkload("Deployment/default/web", rec); err != nil {
		t.Fatal(err)
	}
	ws, err := m2.ListWorkloads()
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws["Deployment/default/web"] != rec {
		t.Fatalf("ListWorkloads = %+v", ws)
	}
	if err := m.DeleteWorkload("Deployment/default/web"); err != nil {
		t.Fatal(err)
	}
	if ws, _ := m.ListWorkloads(); len(ws) != 0 {
		t.Fatalf("after delete: %+v", ws)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Maps created by blockmap (no agent yet) are reused by the enforce object loaded later, and vice versa.
func TestSharedWithEnforceObject(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	dir := enforcetest.PinDir(t)
	m, err := blockmap.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Put(7, blockmap.Entry{}); err != nil {
		t.Fatal(err)
	}
	var objs bpf.EnforceObjects
	if err := bpf.LoadEnforceObjects(&objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}); err != nil {
		t.Fatalf("load enforce object over blockmap's pins: %v", err)
	}
	defer objs.Close()
	var e bpf.EnforceBlockedEntry
	if err := objs.Blocked.Lookup(uint64(7), &e); err != nil {
		t.Fatalf("object does not see blockmap's entry: %v", err)
	}
	denied, err := blockmap.Denied(dir)
	if err != nil || len(denied) != 0 {
		t.Fatalf("Denied = %v, %v", denied, err)
	}
}

// The traffic probe's object (bpf/traffic.bpf.c, which drops egress packets of blocked cgroups) and the enforce
// object meet in one pin dir: whichever loads first creates the shared maps, the other reuses them.
func TestTrafficAndEnforceShareMaps(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	for _, trafficFirst := range []bool{true, false} {
		dir := enforcetest.PinDir(t)
		opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}
		var tr bpf.TrafficObjects
		var en bpf.EnforceObjects
		loadTraffic := func() {
			if err := bpf.LoadTrafficObjects(&tr, opts); err != nil {
				t.Fatalf("load traffic object (first=%v): %v", trafficFirst, err)
			}
		}
		loadEnforce := func() {
			if err := bpf.LoadEnforceObjects(&en, opts); err != nil {
				t.Fatalf("load enforce object (traffic first=%v): %v", trafficFirst, err)
			}
		}
		if trafficFirst {
			loadTraffic()
			loadEnforce()
		} else {
			loadEnforce()
			loadTraffic()
		}
		for name, pair := range map[string][2]*ebpf.Map{
			"blocked":        {tr.Blocked, en.Blocked},
			"blocked_active": {tr.BlockedActive, en.BlockedActive},
			"api_endpoints":  {tr.ApiEndpoints, en.ApiEndpoints},
			"api_filter":     {tr.ApiFilter, en.ApiFilter},
		} {
			a, errA := pair[0].Info()
			b, errB := pair[1].Info()
			if errA != nil || errB != nil {
				t.Fatalf("map info %s: %v %v", name, errA, errB)
			}
			idA, _ := a.ID()
			idB, _ := b.ID()
			if idA != idB {
				t.Errorf("%s: traffic uses map %d, enforce map %d", name, idA, idB)
			}
		}
		tr.Close()
		en.Close()
	}
}
