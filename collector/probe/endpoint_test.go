package probe

import (
	"net/netip"
	"testing"

	"github.com/fanoutdev/fanout/bpf"
)

func TestParseEndpoints(t *testing.T) {
	got, err := ParseEndpoints(" 10.96.0.1:443, 192.0.2.10,[fd00::1]:6443, ::1 ,[::ffff:10.0.0.1]:443,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Endpoint{
		{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443},
		{Addr: netip.MustParseAddr("192.0.2.10")},
		{Addr: netip.MustParseAddr("fd00::1"), Port: 6443},
		{Addr: netip.MustParseAddr("::1")},
		{Addr: netip.MustParseAddr("10.0.0.1"), Port: 443}, // v4-mapped is stored as IPv4
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%d: got %v, want %v", i, got[i], want[i])
		}
		if rt := endpointFromKey(got[i].key(), bpf.TrafficApiEndpointValue{}); rt != want[i] {
			t.Errorf("%d: key round trip %v, want %v", i, rt, want[i])
		}
	}
	for _, bad := range []string{"10.96.0.1:99999", "kubernetes.default", "10.96.0.1:", "1.2.3"} {
		if _, err := ParseEndpoints(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReleaseAtLeast(t *testing.T) {
	for rel, want := range map[string]bool{
		"6.18.44-fc-v1272": true, "6.10.0": true, "6.9.12-arch1": false, "5.15.0-91-generic": false, "7.0": true,
		"garbage": false, "": false,
	} {
		if got := releaseAtLeast(rel, 6, 10); got != want {
			t.Errorf("releaseAtLeast(%q, 6, 10) = %v, want %v", rel, got, want)
		}
	}
}
