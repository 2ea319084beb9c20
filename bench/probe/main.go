package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/internal/benchmd"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/collector/probe"
)

const serverEnv = "FANOUT_BENCH_SERVER"

// settle is the pause after attaching or detaching programs before a block is measured.
const settle = 20 * time.Millisecond

type options struct {
	rounds, perBlock int
	out              string
}

func main() {
	if os.Getenv(serverEnv) == "1" {
		// serve runs until the bench kills it; it returns only on failure.
		fmt.Fprintln(os.Stderr, "bench server:", serve())
		os.Exit(1)
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 200, "A/B rounds (each runs every configuration once, in rotating order)")
	flag.IntVar(&o.perBlock, "per-block", 1000, "request/response round trips per block")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "file whose \"Probe overhead\" section is replaced")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(o, logger); err != nil {
		logger.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// serve is the echo server child (in a cgroup outside the attach point, so only the client side is hooked):
// accept one connection, echo 64-byte messages with blocking syscalls.
func serve() error {
	runtime.LockOSThread()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	if err := syscall.Listen(fd, 8); err != nil {
		return err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return err
	}
	fmt.Println(sa.(*syscall.SockaddrInet4).Port)
	for {
		c, _, err := syscall.Accept(fd)
		if err != nil {
			return err
		}
		go echo(c)
	}
}

func echo(c int) {
	runtime.LockOSThread() // the thread's CPU time is this connection's server side
	if err := pinThread(); err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
	}
	syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	buf := make([]byte, 64)
	for {
		if err := readFull(c, buf); err != nil {
			syscall.Close(c)
			return // client closed
		}
		if buf[0] == cpuQuery {
			binary.LittleEndian.PutUint64(buf[1:9], uint64(threadCPU()))
		}
		if _, err := syscall.Write(c, buf); err != nil {
			syscall.Close(c)
			return
		}
	}
}

// cpuQuery as a request's first byte asks the server for its thread's CPU time (ns) in bytes 1..8 of the answer.
const cpuQuery = 1

// threadCPU is the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID: the scheduler's exact runtime, which on
// kernels without IRQ time accounting includes the softirq work done in the thread's context, i.e. loopback
// delivery and the BPF hooks on it).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

func readFull(fd int, b []byte) error {
	for n := 0; n < len(b); {
		m, err := syscall.Read(fd, b[n:])
		if err != nil {
			return err
		}
		if m == 0 {
			return errors.New("eof")
		}
		n += m
	}
	return nil
}

func run(o options, logger *slog.Logger) error {
	mnt, err := cgroups.Cgroup2Mount()
	if err != nil {
		return err
	}
	base := filepath.Join(mnt, fmt.Sprintf("fanout-bench-%d", os.Getpid()))
	attachAt, serverCg := filepath.Join(base, "attach"), filepath.Join(base, "server")
	clientCg := filepath.Join(attachAt, "client")
	for _, d := range []string{base, attachAt, serverCg, clientCg} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("create cgroup: %w", err)
		}
	}
	origCg := cgroupOf(mnt)
	defer func() {
		os.WriteFile(filepath.Join(origCg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
		for _, d := range []string{clientCg, serverCg, attachAt, base} {
			if err := os.Remove(d); err != nil {
				logger.Warn("remove cgroup", "dir", d, "err", err)
			}
		}
	}()

	pinDir := filepath.Join(probe.DefaultBPFFS, "fanout-bench", strconv.Itoa(os.Getpid()))
	p, err := probe.New(probe.Config{PinDir: pinDir, Mode: probe.ModeSockops}, logger)
	if err != nil {
		return err
	}
	defer func() {
		p.Uninstall()
		os.RemoveAll(pinDir) // the bench's own instance: also the shared block-list pins
		os.Remove(filepath.Dir(pinDir))
	}()

	// Server child in its own cgroup.
	sfd, err := os.Open(serverCg)
	if err != nil {
		return err
	}
	srv := exec.Command(os.Args[0])
	srv.Env = append(os.Environ(), serverEnv+"=1")
	srv.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(sfd.Fd())}
	srv.Stderr = os.Stderr
	stdout, err := srv.StdoutPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	sfd.Close()
	defer func() { srv.Process.Kill(); srv.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("server port: %w", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return err
	}

	// The benchmark process (the client) moves into the hooked cgroup before creating its socket.
	if err := os.WriteFile(filepath.Join(clientCg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("enter client cgroup: %w", err)
	}
	runtime.LockOSThread()
	if err := pinThread(); err != nil {
		return err
	}
	dial := func() (int, error) {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			return -1, err
		}
		if err := syscall.Connect(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
			syscall.Close(fd)
			return -1, fmt.Errorf("connect: %w", err)
		}
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		return fd, nil
	}
	plainFd, err := dial()
	if err != nil {
		return err
	}
	defer syscall.Close(plainFd)
	fd := plainFd
	buf := make([]byte, 64)
	// block runs n round trips on fd and returns the wall time.
	serverCPU := func() (time.Duration, error) {
		q := make([]byte, 64)
		q[0] = cpuQuery
		if _, err := syscall.Write(fd, q); err != nil {
			return 0, err
		}
		if err := readFull(fd, q); err != nil {
			return 0, err
		}
		return time.Duration(binary.LittleEndian.Uint64(q[1:9])), nil
	}
	// block runs n round trips on fd and returns the wall time and the CPU time both ends' threads spent on them.
	block := func(n int) (wall, cpu time.Duration, err error) {
		c0, s0 := threadCPU(), time.Duration(0)
		if s0, err = serverCPU(); err != nil {
			return 0, 0, err
		}
		start := time.Now()
		for range n {
			if _, err := syscall.Write(fd, buf); err != nil {
				return 0, 0, err
			}
			if err := readFull(fd, buf); err != nil {
				return 0, 0, err
			}
		}
		wall = time.Since(start)
		s1, err := serverCPU()
		if err != nil {
			return 0, 0, err
		}
		return wall, threadCPU() - c0 + s1 - s0, nil
	}
	if _, _, err := block(5000); err != nil { // warm up
		return err
	}
	// The per-socket design: an API socket opted in at connect() (sockops + its connect4 program attached while
	// dialling), used for the "sockops, API packets" configuration; the plain socket serves every other one.
	apiEPs := []probe.Endpoint{{Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(port)}}
	sobjs := p.SockopsObjects()
	attachSockops := func() (link.Link, error) {
		return link.AttachCgroup(link.CgroupOptions{Path: attachAt, Attach: ebpf.AttachCGroupSockOps, Program: sobjs.FanoutSockops})
	}
	if err := p.SetEndpoints(apiEPs); err != nil {
		return err
	}
	sl, err := attachSockops()
	if err != nil {
		return fmt.Errorf("attach sockops: %w", err)
	}
	cl, err := link.AttachCgroup(link.CgroupOptions{Path: attachAt, Attach: ebpf.AttachCGroupInet4Connect, Program: sobjs.FanoutSockopsConnect4})
	if err != nil {
		sl.Close()
		return fmt.Errorf("attach sockops connect4: %w", err)
	}
	apiFd, err := dial()
	if err != nil {
		cl.Close()
		sl.Close()
		return err
	}
	defer syscall.Close(apiFd)
	// A second API socket counted through the hash maps by cgroup id (what a cgroup without a slot, and every API
	// socket before slots existed, pays): its slot is cleared in its socket storage (user space reaches a socket's
	// storage by its fd).
	apiHashFd, err := dial()
	cl.Close()
	sl.Close()
	if err != nil {
		return err
	}
	defer syscall.Close(apiHashFd)
	var as bpf.SockopsApiSock
	if err := sobjs.ApiSocks.Lookup(int32(apiHashFd), &as); err != nil {
		return fmt.Errorf("api_socks of the second API socket: %w", err)
	}
	if as.Slot == 0 {
		return errors.New("the bench's API socket holds no slot")
	}
	as.Slot = 0
	if err := sobjs.ApiSocks.Update(int32(apiHashFd), as, ebpf.UpdateExist); err != nil {
		return fmt.Errorf("clear the slot of the second API socket: %w", err)
	}
	for _, f := range []int{apiFd, apiHashFd} {
		fd = f
		if _, _, err := block(2000); err != nil {
			return err
		}
	}
	fd = plainFd

	apiEP := []probe.Endpoint{{Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(port)}}
	otherEP := []probe.Endpoint{{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443, ClusterIP: true}}
	objs := p.Objects()
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupSKB, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load empty program: %w", err)
	}
	defer empty.Close()
	attach := func(egress, ingress *ebpf.Program) ([]link.Link, error) {
		var ls []link.Link
		for _, a := range []struct {
			prog *ebpf.Program
			typ  ebpf.AttachType
		}{{egress, ebpf.AttachCGroupInetEgress}, {ingress, ebpf.AttachCGroupInetIngress}} {
			l, err := link.AttachCgroup(link.CgroupOptions{Path: attachAt, Attach: a.typ, Program: a.prog})
			if err != nil {
				return ls, err
			}
			ls = append(ls, l)
		}
		return ls, nil
	}

	emptySockops, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SockOps, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load empty sockops program: %w", err)
	}
	defer emptySockops.Close()
	per := make([][]float64, nConfigs)    // wall ns per round trip, per round
	perCPU := make([][]float64, nConfigs) // CPU ns per round trip (both ends), per round
	var matchPackets uint64
	var matchRTs int
	for r := range o.rounds {
		for i := range nConfigs {
			cfg := (i + r) % nConfigs
			var ls []link.Link
			fd = plainFd
			if cfg == cfgDetachedAPI {
				fd = apiFd
			} else if cfg == cfgDetachedAPIHash {
				fd = apiHashFd
			} else if cfg == cfgSockEmpty {
				fd = apiFd // its callbacks were enabled at connect(); the empty program runs on each
				l, err := link.AttachCgroup(link.CgroupOptions{Path: attachAt, Attach: ebpf.AttachCGroupSockOps, Program: emptySockops})
				if err != nil {
					return fmt.Errorf("attach empty sockops: %w", err)
				}
				ls = append(ls, l)
			} else if cfg == cfgSockAPI || cfg == cfgSockAPIHash || cfg == cfgSockOther {
				if cfg == cfgSockAPI {
					fd = apiFd
				} else if cfg == cfgSockAPIHash {
					fd = apiHashFd
				}
				l, err := attachSockops()
				if err != nil {
					return fmt.Errorf("attach sockops: %w", err)
				}
				ls = append(ls, l)
			} else if cfg == cfgSkbEmpty {
				if ls, err = attach(empty, empty); err != nil {
					return fmt.Errorf("attach: %w", err)
				}
			} else if cfg != cfgDetached {
				eps := apiEP
				if cfg == cfgSkbOther {
					eps = otherEP
				}
				if err := p.SetEndpoints(eps); err != nil {
					return err
				}
				if ls, err = attach(objs.FanoutEgress, objs.FanoutIngress); err != nil {
					return fmt.Errorf("attach: %w", err)
				}
			}
			// Attaching and detaching programs leaves work behind (RCU callbacks freeing program arrays, static key
			// updates) that runs in softirq on whichever thread is on the CPU: settle it before measuring, or it lands
			// in this block's CPU time.
			time.Sleep(settle)
			if _, _, err := block(o.perBlock / 10); err != nil {
				return err
			}
			before, _ := totalPackets(p)
			d, cpu, err := block(o.perBlock)
			after, _ := totalPackets(p)
			for _, l := range ls {
				l.Close()
			}
			if err != nil {
				return err
			}
			if cfg == cfgSkbAPI {
				matchPackets += after - before
				matchRTs += o.perBlock
			}
			per[cfg] = append(per[cfg], float64(d.Nanoseconds())/float64(o.perBlock))
			perCPU[cfg] = append(perCPU[cfg], float64(cpu.Nanoseconds())/float64(o.perBlock+1))
		}
	}
	// Noise from other processes on a shared machine only adds time: compare low percentiles of the per-block
	// means (p10, with the median alongside).
	if path := os.Getenv("FANOUT_BENCH_DUMP"); path != "" {
		if b, err := json.Marshal(map[string]any{"names": configNames, "cpu": perCPU}); err == nil {
			os.WriteFile(path, b, 0o644)
		}
	}
	res := result{rounds: o.rounds, perBlock: o.perBlock, pktsPerRT: float64(matchPackets) / float64(matchRTs),
		oneRunPerRequest: p.OneRunPerRequest()}
	for i := range nConfigs {
		res.cpuP10[i], res.cpuMed[i] = pct(perCPU[i], 10), pct(perCPU[i], 50)
		res.wallP10[i], res.wallMed[i] = pct(per[i], 10), pct(per[i], 50)
		// Paired: each round's block minus its baseline's block of the same round (minutes apart at most
		// seconds), so drifts of the machine cancel; the median drops the rounds that interference hit.
		base := perCPU[baselineOf(i)]
		d := make([]float64, len(perCPU[i]))
		for r := range d {
			d[r] = perCPU[i][r] - base[r]
		}
		res.pairedMed[i], res.pairedQ1[i], res.pairedQ3[i] = pct(d, 50), pct(d, 25), pct(d, 75)
	}
	// In-kernel cost on the real path: kernel BPF run-time statistics (enabled only for this phase).
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return fmt.Errorf("enable bpf stats: %w", err)
	}
	realCost := func(egress, ingress *ebpf.Program, eps []probe.Endpoint) (float64, error) {
		if err := p.SetEndpoints(eps); err != nil {
			return 0, err
		}
		ls, err := attach(egress, ingress)
		defer func() {
			for _, l := range ls {
				l.Close()
			}
		}()
		if err != nil {
			return 0, err
		}
		if _, _, err := block(1000); err != nil {
			return 0, err
		}
		t0, n0 := runStats(egress, ingress)
		if _, _, err := block(20 * o.perBlock); err != nil {
			return 0, err
		}
		t1, n1 := runStats(egress, ingress)
		if n1 == n0 {
			return 0, errors.New("no program runs recorded")
		}
		return float64(t1-t0) / float64(n1-n0), nil
	}
	if res.realMatch, err = realCost(objs.FanoutEgress, objs.FanoutIngress, apiEP); err == nil {
		if res.realOther, err = realCost(objs.FanoutEgress, objs.FanoutIngress, otherEP); err == nil {
			res.realEmpty, err = realCost(empty, empty, otherEP)
		}
	}
	stats.Close()
	if err != nil {
		return fmt.Errorf("real-path cost: %w", err)
	}
	// Per-socket design on the real path: run time per sockops program run, and runs per round trip.
	if err := p.SetEndpoints(apiEPs); err != nil {
		return err
	}
	if stats, err = ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
		return fmt.Errorf("enable bpf stats: %w", err)
	}
	if l, err := attachSockops(); err == nil {
		fd = apiHashFd
		block(1000)
		th0, nh0 := runStats(sobjs.FanoutSockops)
		block(20 * o.perBlock)
		th1, nh1 := runStats(sobjs.FanoutSockops)
		if nh1 > nh0 {
			res.sockRunHash = float64(th1-th0) / float64(nh1-nh0)
		}
		fd = apiFd
		block(1000)
		t0, n0 := runStats(sobjs.FanoutSockops)
		block(20 * o.perBlock)
		t1, n1 := runStats(sobjs.FanoutSockops)
		fd = plainFd
		block(20 * o.perBlock)
		_, n2 := runStats(sobjs.FanoutSockops)
		l.Close()
		res.sockOtherRunsPerRT = float64(n2-n1) / float64(20*o.perBlock)

		if n1 > n0 {
			res.sockRun = float64(t1-t0) / float64(n1-n0)
			res.sockRunsPerRT = float64(n1-n0) / float64(20*o.perBlock)
		}
	}
	stats.Close()
	res.progMatch, res.progOther, res.progBase, err = progCosts(p)
	if err != nil {
		return err
	}
	for i, n := range configNames {
		fmt.Fprintf(os.Stderr, "%-34s cpu p10 %6.0f median %6.0f | wall p10 %6.0f median %6.0f | added per packet: paired median %5.0f, cpu p10 %5.0f\n",
			n, res.cpuP10[i], res.cpuMed[i], res.wallP10[i], res.wallMed[i], res.pairedMed[i]/res.pktsPerRT, res.added(&res.cpuP10, i))
	}
	section := res.markdown()
	fmt.Print(section)
	return benchmd.WriteSection(o.out, "Probe overhead", section)
}

// runStats sums the kernel's run time and run count of the programs (egress and ingress may be the same).
func runStats(progs ...*ebpf.Program) (time.Duration, uint64) {
	var t time.Duration
	var n uint64
	seen := map[*ebpf.Program]bool{}
	for _, p := range progs {
		if seen[p] {
			continue
		}
		seen[p] = true
		if st, err := p.Stats(); err == nil {
			t += st.Runtime
			n += st.RunCount
		}
	}
	return t, n
}

func cgroupOf(mnt string) string {
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, l := range strings.Split(string(b), "\n") {
		if rel, ok := strings.CutPrefix(l, "0::"); ok {
			return filepath.Join(mnt, rel)
		}
	}
	return mnt
}

func totalPackets(p *probe.Probe) (uint64, error) {
	m, err := p.ReadCounters()
	var n uint64
	for _, c := range m {
		n += c.TxPackets + c.RxPackets
	}
	return n, err
}

func pct(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)*p/100]
}

// pinThread pins the calling thread to the machine's last CPU. Client and server threads share it: whether the
// scheduler put them on one CPU or two otherwise changes a round trip's CPU time by a quarter (cross-CPU wakeups),
// block by block, which would drown what the probe adds.
func pinThread() error {
	var set unix.CPUSet
	set.Set(runtime.NumCPU() - 1)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin thread to CPU %d: %w", runtime.NumCPU()-1, err)
	}
	return nil
}
