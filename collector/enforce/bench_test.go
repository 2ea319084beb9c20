package enforce_test

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
)

// BenchmarkConnect measures connect()+close() of a TCP socket to a loopback API endpoint from a pod cgroup:
// without the enforce programs, with them and nothing blocked (one array lookup), and with another pod blocked
// (endpoint match + ancestor walk, then allowed).
func BenchmarkConnect(b *testing.B) {
	enforcetest.RequirePrivileged(b)
	pin := enforcetest.PinDir(b)
	_, pods := enforcetest.NodeCgroup(b)
	b.Cleanup(func() { enforce.Uninstall(pin) })
	_, ctr := enforcetest.PodCgroup(b, pods, "00000001-0000-4000-8000-000000000000", "app")
	enforcetest.PodCgroup(b, pods, "00000002-0000-4000-8000-000000000000", "app")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ap := ln.Addr().(*net.TCPAddr).AddrPort()
	sa := &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}

	// Run the benchmark process inside the pod's container cgroup, then move back.
	orig := ownCgroup(b)
	moveSelf(b, ctr)
	defer moveSelf(b, orig)

	connect := func(b *testing.B) {
		for b.Loop() {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.Connect(fd, sa); err != nil {
				b.Fatal(err)
			}
			// Abortive close: no TIME_WAIT build-up across iterations.
			unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			unix.Close(fd)
		}
	}
	b.Run("no-programs", connect)

	res := newResolver()
	res.set("00000001-0000-4000-8000-000000000000", other)
	res.set("00000002-0000-4000-8000-000000000000", web)
	enf, err := enforce.New(enforce.Config{PinDir: pin, PodsCgroup: pods}, enforce.Deps{Workloads: res},
		discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer enf.Close()
	enforcetest.RegisterEndpoints(b, pin, ap)
	b.Run("attached-nothing-blocked", connect)
	if err := enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute}); err != nil {
		b.Fatal(err)
	}
	b.Run("attached-other-pod-blocked", connect)
}

func ownCgroup(b *testing.B) string {
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return filepath.Join(enforcetest.Cgroup2Mount(b), p)
		}
	}
	b.Fatal("no cgroup2 entry in /proc/self/cgroup")
	return ""
}

func moveSelf(b *testing.B, dir string) {
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		b.Fatalf("move into %s: %v", dir, err)
	}
}
