package probe

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/pindir"
)

// echoClientEnv makes the test binary an echo client: it connects to the address in the variable, then for each line
// on stdin writes echoSize bytes and reads them back, answering "ok"; stdin's end closes the connection.
const echoClientEnv = "FANOUT_TEST_ECHO_CLIENT"

const echoSize = 100

func echoClientMain(addr string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	buf := make([]byte, echoSize)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if _, err := c.Write(buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("ok")
	}
	c.Close()
	time.Sleep(50 * time.Millisecond) // the FIN exchange
	return 0
}

// echoClient is a client process in a cgroup holding one connection open across probe restarts.
type echoClient struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startEchoClient(t *testing.T, dir, addr string) *echoClient {
	t.Helper()
	cmd := helperIn(t, dir, echoClientEnv+"="+addr)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &echoClient{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() { c.in.Close(); _ = c.cmd.Process.Kill(); _ = c.cmd.Wait() })
	return c
}

// exchange runs n request/response round trips on the client's one connection.
func (c *echoClient) exchange(n int) {
	c.t.Helper()
	for range n {
		if _, err := io.WriteString(c.in, "x\n"); err != nil {
			c.t.Fatal(err)
		}
		if !c.out.Scan() || c.out.Text() != "ok" {
			c.t.Fatalf("echo client: %q %v", c.out.Text(), c.out.Err())
		}
	}
}

func (c *echoClient) close() {
	c.t.Helper()
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		c.t.Fatalf("echo client: %v", err)
	}
}

// An upgrade from the cgroup_skb layout (the first version of fanout) to the per-socket design loses and doubles
// nothing: a connection opened under the old layout is counted by the old programs throughout (while no agent runs,
// and after the new one started), a connection opened after the upgrade by the per-socket programs only, and once the
// old connections are gone and the old programs quiet, their links are detached and unpinned.
func TestUpgradeHandoffFromCgroupSKB(t *testing.T) {
	requirePrivileged(t)
	mnt, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := makeCgroup(t, mnt, fmt.Sprintf("fanout-test-%d-handoff", os.Getpid()))
	oldPod, oldID := makeCgroup(t, root, "old")
	newPod, newID := makeCgroup(t, root, "new")

	l := loopbackServer(t, echoConn)
	ap := netip.MustParseAddrPort(l.Addr().String())
	eps := []Endpoint{{Addr: ap.Addr(), Port: ap.Port()}}

	pin := testPinDir(t)
	old, err := New(Config{PinDir: pin, CgroupPath: root, Mode: ModeSKB}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}
	a := startEchoClient(t, oldPod, l.Addr().String())
	a.exchange(10)
	if err := old.Close(); err != nil { // the old agent stops: its pinned programs keep counting
		t.Fatal(err)
	}
	a.exchange(10)

	p, err := New(Config{PinDir: pin, CgroupPath: root, Mode: ModeSockops, HandoffQuiet: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Uninstall(); err != nil {
			t.Errorf("Uninstall: %v", err)
		}
	})
	if p.Mode() != ModeSockops || !p.Handoff() {
		t.Fatalf("mode %s handoff %v, want sockops with the old links kept", p.Mode(), p.Handoff())
	}
	a.exchange(10)
	b := startEchoClient(t, newPod, l.Addr().String())
	b.exchange(10)
	a.close()
	b.close()

	got, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		id   uint64
		rts  uint64
	}{{"connection opened before the upgrade", oldID, 30}, {"connection opened after it", newID, 10}} {
		c := got[tc.id]
		t.Logf("%s: %+v", tc.name, c)
		if c.Connects != 1 || c.TxBytes != tc.rts*echoSize || c.RxBytes < tc.rts*echoSize || c.RxBytes > tc.rts*echoSize+1 {
			t.Errorf("%s: connects %d tx %d rx %d, want 1, %d and %d (+1 for a FIN)", tc.name, c.Connects, c.TxBytes,
				c.RxBytes, tc.rts*echoSize, tc.rts*echoSize)
		}
		if c.TxSegments < tc.rts || c.TxSegments > tc.rts+2 {
			t.Errorf("%s: requests (tx segments) %d, want %d", tc.name, c.TxSegments, tc.rts)
		}
	}

	// The old programs count nothing more: after HandoffQuiet their links go.
	time.Sleep(400 * time.Millisecond)
	if _, err := p.ReadCounters(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, err := p.ReadCounters(); err != nil {
		t.Fatal(err)
	}
	if p.Handoff() {
		t.Fatal("handoff still on after the old connections closed and HandoffQuiet passed")
	}
	for _, name := range []string{pindir.LinkTrafficEgress, pindir.LinkTrafficIngress} {
		if _, err := os.Stat(filepath.Join(pin, name)); err == nil {
			t.Errorf("pin %s still there after the handoff", name)
		}
	}
}
