package probe

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/fanoutdev/fanout/internal/testpriv"
)

// requirePrivileged skips when not root, unless FANOUT_REQUIRE_PRIVILEGED=1 (CI), where it never skips.
func requirePrivileged(t testing.TB) {
	t.Helper()
	testpriv.Require(t, "BPF and cgroups")
}

// testPinDir returns a fresh pin dir removed at test end.
func testPinDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(DefaultBPFFS, "fanout-test", fmt.Sprintf("%s-%d", filepath.Base(t.Name()), os.Getpid()))
	if err := EnsurePinDir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.Remove(filepath.Dir(dir)) // shared parent, when empty
	})
	return dir
}

func newTestProbe(t testing.TB, cfg Config) *Probe {
	t.Helper()
	requirePrivileged(t)
	if cfg.PinDir == "" {
		cfg.PinDir = testPinDir(t)
	}
	p, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Uninstall(); err != nil {
			t.Errorf("Uninstall: %v", err)
		}
	})
	return p
}

// packet builds an Ethernet frame (what BPF_PROG_TEST_RUN wants) carrying IPv4 or IPv6 + TCP/UDP + payload.
func packet(src, dst netip.AddrPort, proto uint8, payload int) []byte {
	l4len := 20
	if proto == 17 {
		l4len = 8
	}
	var ip []byte
	if src.Addr().Is4() {
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+l4len+payload))
		ip[8] = 64
		ip[9] = proto
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(l4len+payload))
		ip[6] = proto
		ip[7] = 64
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	l4 := make([]byte, l4len)
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	if proto == 6 {
		l4[12] = 5 << 4
	}
	eth := make([]byte, 14)
	eth[0], eth[6] = 2, 2
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86DD)
	}
	out := append(eth, ip...)
	out = append(out, l4...)
	return append(out, make([]byte, payload)...)
}

// loopbackServer listens on 127.0.0.1 and serves each connection with serve (in its own goroutine) until the test
// ends.
func loopbackServer(t *testing.T, serve func(net.Conn)) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return l
}

// echoConn echoes what the peer sends until it closes.
func echoConn(c net.Conn) { defer c.Close(); io.Copy(c, c) }
