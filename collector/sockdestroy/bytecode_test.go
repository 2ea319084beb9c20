package sockdestroy

import (
	"net/netip"
	"testing"
)

func TestCompiledFilterSemantics(t *testing.T) {
	api4 := netip.MustParseAddr("10.96.0.1")
	api6 := netip.MustParseAddr("fd00::1")
	real4 := netip.MustParseAddr("192.0.2.10")
	bc := compile([]uint64{11, 22, 33}, []Destination{{Addr: api4, Port: 443}, {Addr: api6, Port: 6443}, {Addr: real4}})
	if len(bc)%4 != 0 {
		t.Fatalf("bytecode length %d not a multiple of 4", len(bc))
	}
	cases := []struct {
		cg    uint64
		dst   string
		port  uint16
		match bool
	}{
		{11, "10.96.0.1", 443, true},
		{22, "10.96.0.1", 443, true},
		{33, "fd00::1", 6443, true},
		{33, "192.0.2.10", 1234, true},        // port 0 = any port
		{22, "::ffff:10.96.0.1", 443, true},   // IPv4-mapped on a dual-stack socket
		{44, "10.96.0.1", 443, false},         // other cgroup
		{11, "10.96.0.1", 80, false},          // other port
		{11, "10.96.0.2", 443, false},         // other address
		{11, "fd00::1", 443, false},           // v6 endpoint, wrong port
		{0, "192.0.2.10", 1, false},           // no cgroup
		{33, "fd00::2", 6443, false},          // other v6 address
		{11, "::ffff:192.0.2.10", 9, true},    // mapped, any port
		{12, "::ffff:192.0.2.10", 9, false},   // mapped, wrong cgroup
		{22, "::ffff:192.0.2.11", 9, false},   // mapped, wrong address
		{33, "10.96.0.1", 443, true},          // last cgroup of the OR chain
		{33, "192.0.2.10", 0, true},           // last destination of the OR chain
		{11, "fd00::1", 6443, true},           // first cgroup, middle destination
		{22, "fd00::1", 6444, false},          // middle destination, wrong port
		{33, "::ffff:10.96.0.1", 444, false},  // mapped, wrong port
		{22, "10.96.0.1", 443 + 256, false},   // port compare uses all bits
		{1<<40 | 11, "10.96.0.1", 443, false}, // cgroup compare uses all 64 bits
		{11, "10.96.0.1", 443, true},          // repeat: interpreter has no state
		{22, "192.0.2.10", 65535, true},       // any port
		{22, "198.51.100.1", 443, false},      // unrelated destination
		{33, "fd00::1", 0, false},             // exact-port destination never matches port 0
		{11, "::1", 443, false},               // loopback v6
		{11, "127.0.0.1", 443, false},         // loopback v4
		{22, "::ffff:127.0.0.1", 443, false},  // mapped loopback
		{33, "fd00::1", 6443, true},           // sanity again
		{44, "fd00::1", 6443, false},          // sanity: cgroup gate
		{44, "192.0.2.10", 1, false},          // sanity: cgroup gate with any-port destination
		{0, "10.96.0.1", 443, false},          // cgroup 0
	}
	for _, c := range cases {
		got := run(bc, c.cg, netip.MustParseAddr(c.dst), c.port)
		if got != c.match {
			t.Errorf("cgroup %d dst %s:%d: match=%v, want %v", c.cg, c.dst, c.port, got, c.match)
		}
	}
}

func TestSingleConditions(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	bc := compile([]uint64{7}, []Destination{{Addr: a, Port: 443}})
	if !run(bc, 7, a, 443) || run(bc, 8, a, 443) || run(bc, 7, a, 444) {
		t.Fatal("single cgroup/destination filter misbehaves")
	}
	if len(bc) != 12+16 { // cgroup cond (4+8) AND dst cond (4+8+4): no JMPs
		t.Fatalf("bytecode length %d, want 28", len(bc))
	}
}
