package probe

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestLifecycleCloseRestartUninstall(t *testing.T) {
	requirePrivileged(t)
	mnt, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := makeCgroup(t, mnt, fmt.Sprintf("fanout-test-%d-life", os.Getpid()))
	pin := testPinDir(t)
	cfg := Config{PinDir: pin, CgroupPath: root, Mode: ModeSKB}
	p1, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443, ClusterIP: true}
	if err := p1.SetEndpoints([]Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p1.SetEndpoints(nil); err == nil {
		t.Fatal("SetEndpoints after Close succeeded")
	}
	for _, name := range []string{"link_traffic_egress", "link_traffic_connect6", "traffic_counters", "traffic_stats",
		"api_endpoints", "api_filter", "api_socks"} {
		if _, err := os.Stat(filepath.Join(pin, name)); err != nil {
			t.Fatalf("pin %s gone after Close: %v", name, err)
		}
	}

	// Restart: pinned maps (the endpoint set) and links are reused.
	p2, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p2.Endpoints()
	if err != nil || len(got) != 1 || got[0] != ep {
		t.Fatalf("endpoints after restart: %v %v", got, err)
	}
	p2.Close()

	// An upgrade that changes a map's layout replaces the incompatible pin.
	p3, err := New(Config{PinDir: pin, CgroupPath: root, MaxCgroups: 1024, Mode: ModeSKB}, nil)
	if err != nil {
		t.Fatalf("New with incompatible pinned map: %v", err)
	}
	if m := p3.Objects().TrafficCounters.MaxEntries(); m != 1024 {
		t.Fatalf("traffic_counters max entries %d after replace", m)
	}
	if err := p3.Uninstall(); err != nil {
		t.Fatal(err)
	}
	for _, name := range append([]string{"link_traffic_egress", "link_traffic_ingress"}, ownMapPins...) {
		if _, err := os.Stat(filepath.Join(pin, name)); !os.IsNotExist(err) {
			t.Fatalf("pin %s still there after Uninstall: %v", name, err)
		}
	}
}
