package probe

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
)

// Programs tested with BPF_PROG_TEST_RUN. In a test run the skb's socket cgroup is the caller's cgroup, so counts
// land under the test process's cgroup id.

func run(t *testing.T, prog *ebpf.Program, pkt []byte) uint32 {
	t.Helper()
	ret, err := prog.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatalf("prog run: %v", err)
	}
	return ret
}

func total(t *testing.T, p *Probe) Counters {
	t.Helper()
	m, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	var c Counters
	for _, v := range m {
		c = c.Add(v)
	}
	return c
}

func TestProgCountsMatchingPackets(t *testing.T) {
	p := newTestProbe(t, Config{})
	eps, err := ParseEndpoints("10.96.0.1:443, 192.0.2.10, [fd00::1]:6443, 2001:db8::7")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}
	pod4 := netip.MustParseAddrPort("10.244.1.5:40000")
	pod6 := netip.MustParseAddrPort("[fd00:244::5]:40000")
	ap := netip.AddrPortFrom
	pa := netip.MustParseAddr

	cases := []struct {
		name     string
		egress   bool
		src, dst netip.AddrPort
		proto    uint8
		payload  int
		match    bool
	}{
		{"v4 clusterip port egress", true, pod4, ap(pa("10.96.0.1"), 443), 6, 100, true},
		{"v4 clusterip port ingress", false, ap(pa("10.96.0.1"), 443), pod4, 6, 1000, true},
		{"v4 clusterip other port", true, pod4, ap(pa("10.96.0.1"), 80), 6, 100, false},
		{"v4 any-port endpoint", true, pod4, ap(pa("192.0.2.10"), 6443), 6, 7, true},
		{"v4 any-port endpoint udp", true, pod4, ap(pa("192.0.2.10"), 53), 17, 9, true},
		{"v4 other address", true, pod4, ap(pa("10.96.0.2"), 443), 6, 100, false},
		{"v4 ingress from pod to server side", false, pod4, ap(pa("10.96.0.1"), 443), 6, 100, false},
		{"v6 port egress", true, pod6, ap(pa("fd00::1"), 6443), 6, 50, true},
		{"v6 port ingress pure ack", false, ap(pa("fd00::1"), 6443), pod6, 6, 0, true},
		{"v6 other port", true, pod6, ap(pa("fd00::1"), 443), 6, 50, false},
		{"v6 any-port", true, pod6, ap(pa("2001:db8::7"), 1), 6, 3, true},
		{"v6 other address", true, pod6, ap(pa("fd00::2"), 6443), 6, 50, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prog := p.objs.FanoutIngress
			if tc.egress {
				prog = p.objs.FanoutEgress
			}
			before := total(t, p)
			if ret := run(t, prog, packet(tc.src, tc.dst, tc.proto, tc.payload)); ret != 1 {
				t.Fatalf("verdict %d, want 1 (pass)", ret)
			}
			d := total(t, p).Sub(before)
			var want Counters
			if tc.match {
				seg := uint64(0)
				if tc.payload > 0 {
					seg = 1
				}
				if tc.egress {
					want = Counters{TxPackets: 1, TxBytes: uint64(tc.payload), TxSegments: seg}
				} else {
					want = Counters{RxPackets: 1, RxBytes: uint64(tc.payload), RxSegments: seg}
				}
			}
			if d != want {
				t.Fatalf("delta %+v, want %+v", d, want)
			}
		})
	}
}

func TestProgEndpointSetReplaced(t *testing.T) {
	p := newTestProbe(t, Config{})
	pod := netip.MustParseAddrPort("10.244.1.5:40000")
	old := netip.MustParseAddrPort("10.96.0.1:443")
	nu := netip.MustParseAddrPort("10.0.0.9:6443")
	if err := p.SetEndpoints([]Endpoint{{Addr: old.Addr(), Port: old.Port(), ClusterIP: true}}); err != nil {
		t.Fatal(err)
	}
	if err := p.SetEndpoints([]Endpoint{{Addr: nu.Addr(), Port: nu.Port()}}); err != nil {
		t.Fatal(err)
	}
	got, err := p.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Addr != nu.Addr() || got[0].Port != nu.Port() || got[0].ClusterIP {
		t.Fatalf("endpoints %v, want [%v]", got, nu)
	}
	before := total(t, p)
	run(t, p.objs.FanoutEgress, packet(pod, old, 6, 10))
	if d := total(t, p).Sub(before); !d.IsZero() {
		t.Fatalf("old endpoint still counted: %+v", d)
	}
	run(t, p.objs.FanoutEgress, packet(pod, nu, 6, 10))
	if d := total(t, p).Sub(before); d.TxPackets != 1 || d.TxBytes != 10 {
		t.Fatalf("new endpoint delta %+v", d)
	}
}

func TestProgEgressDropsBlockedCgroup(t *testing.T) {
	p := newTestProbe(t, Config{})
	api := netip.MustParseAddrPort("10.96.0.1:443")
	pod := netip.MustParseAddrPort("10.244.1.5:40000")
	if err := p.SetEndpoints([]Endpoint{{Addr: api.Addr(), Port: api.Port()}}); err != nil {
		t.Fatal(err)
	}
	// In a test run the skb's socket belongs to the caller's cgroup: run from a child cgroup (the root cgroup has
	// no ancestor levels to check) and block it through the shared maps.
	_, id := enterTestCgroup(t)
	ids := []uint64{id}
	for _, id := range ids {
		if err := p.objs.Blocked.Put(id, make([]byte, 16)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.objs.BlockedActive.Put(uint32(0), uint32(1)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range ids {
			p.objs.Blocked.Delete(id)
		}
		p.objs.BlockedActive.Put(uint32(0), uint32(0))
	})
	before := total(t, p)
	if ret := run(t, p.objs.FanoutEgress, packet(pod, netip.MustParseAddrPort("10.96.0.9:443"), 6, 10)); ret != 1 {
		t.Fatalf("non-API packet of a blocked cgroup: verdict %d, want pass", ret)
	}
	if ret := run(t, p.objs.FanoutEgress, packet(pod, api, 6, 10)); ret != 0 {
		t.Fatalf("API packet of a blocked cgroup: verdict %d, want drop", ret)
	}
	if d := total(t, p).Sub(before); d != (Counters{TxDropped: 1}) {
		t.Fatalf("delta %+v, want one drop", d)
	}
	m, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if m[id].TxDropped != 1 {
		t.Fatalf("drop not counted under the blocked cgroup %d: %v", id, m)
	}
}

// More IPv4 endpoints than fast-table slots: the ones beyond the table match through the hash.
func TestProgManyEndpoints(t *testing.T) {
	p := newTestProbe(t, Config{})
	var eps []Endpoint
	for i := range 12 {
		eps = append(eps, Endpoint{Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), Port: 6443})
	}
	if err := p.SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}
	var f bpf.TrafficApiFilterValue
	if err := p.objs.ApiFilter.Lookup(uint32(0), &f); err != nil {
		t.Fatal(err)
	}
	if f.Fast4[len(f.Fast4)-1].Addr == 0 {
		t.Fatalf("fast table not filled: %+v", f.Fast4)
	}
	pod := netip.MustParseAddrPort("10.244.1.5:40000")
	before := total(t, p)
	for _, e := range eps {
		run(t, p.objs.FanoutEgress, packet(pod, netip.AddrPortFrom(e.Addr, e.Port), 6, 1))
		run(t, p.objs.FanoutEgress, packet(pod, netip.AddrPortFrom(e.Addr, e.Port+1), 6, 1))
	}
	if d := total(t, p).Sub(before); d.TxPackets != uint64(len(eps)) {
		t.Fatalf("counted %d packets, want %d", d.TxPackets, len(eps))
	}
	// Shrinking the set clears fast entries that are gone.
	if err := p.SetEndpoints(eps[10:]); err != nil {
		t.Fatal(err)
	}
	before = total(t, p)
	run(t, p.objs.FanoutEgress, packet(pod, netip.AddrPortFrom(eps[0].Addr, 6443), 6, 1))
	run(t, p.objs.FanoutEgress, packet(pod, netip.AddrPortFrom(eps[11].Addr, 6443), 6, 1))
	if d := total(t, p).Sub(before); d.TxPackets != 1 {
		t.Fatalf("after shrink counted %d packets, want 1", d.TxPackets)
	}
}
