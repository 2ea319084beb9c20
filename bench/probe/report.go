package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/fanoutdev/fanout/collector/probe"
)

// Configurations of the interleaved A/B rounds (index into the per-configuration statistics).
const (
	cfgDetached        = iota // plain socket, nothing attached
	cfgSkbAPI                 // cgroup_skb programs, the server in api_endpoints
	cfgSkbOther               // cgroup_skb programs, another endpoint set
	cfgSkbEmpty               // empty cgroup_skb programs: the hook's own cost
	cfgSockAPI                // sockops on the API socket (opted in at connect)
	cfgSockOther              // sockops attached, plain socket
	cfgSockEmpty              // empty sockops program, API socket: the sockops hook's own cost
	cfgDetachedAPI            // API socket, nothing attached
	cfgSockAPIHash            // sockops on an API socket counted by cgroup id (no slot: two hash lookups per response)
	cfgDetachedAPIHash        // that socket, nothing attached
	nConfigs
)

var configNames = [nConfigs]string{"detached", "cgroup_skb, API packets", "cgroup_skb, other packets",
	"empty cgroup_skb programs", "sockops, API packets", "sockops, other packets", "empty sockops program, API socket",
	"detached, API socket", "sockops, API packets, no slot", "detached, API socket without slot"}

// baselineOf is the configuration a configuration is compared with: the same socket with nothing attached.
func baselineOf(cfg int) int {
	switch cfg {
	case cfgSockAPI, cfgSockEmpty:
		return cfgDetachedAPI
	case cfgSockAPIHash:
		return cfgDetachedAPIHash
	}
	return cfgDetached
}

type result struct {
	rounds, perBlock int
	pktsPerRT        float64
	// Per configuration, per-block means per round trip (ns): CPU time of both ends' threads, and wall time.
	cpuP10, cpuMed, wallP10, wallMed [nConfigs]float64
	// Per configuration, the per-round difference from its baseline's block of the same round (CPU ns per round
	// trip): median and quartiles.
	pairedMed, pairedQ1, pairedQ3 [nConfigs]float64
	realMatch, realOther          float64 // ns per program run on the real path (bpf_stats)
	realEmpty                     float64
	progMatch, progOther          float64
	progBase                      float64

	sockRun, sockRunsPerRT float64
	sockRunHash            float64 // per run on the API socket without a slot
	sockOtherRunsPerRT     float64
	oneRunPerRequest       bool
}

// added is what configuration cfg adds per hooked packet over its same-socket baseline, from statistic v.
func (r result) added(v *[nConfigs]float64, cfg int) float64 {
	return (v[cfg] - v[baselineOf(cfg)]) / r.pktsPerRT
}

func (r result) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Probe overhead\n\n")
	fmt.Fprintf(&b, "`make bench-probe` (bench/probe), %s, kernel %s, %d CPUs, Go %s.\n\n", time.Now().UTC().Format("2006-01-02"),
		kernelRelease(), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "Method: one TCP connection over loopback, 64-byte request / 64-byte response with blocking "+
		"syscalls; the client's cgroup is below the attach point, the echo server's is not. Client and server threads "+
		"are pinned to one CPU (left to the scheduler, whether they shared a CPU changed a block's CPU time by up to a "+
		"quarter, block by block). %d rounds; each round runs "+
		"%d round trips in each of %d configurations, back to back in rotating order (table below); after each attach or "+
		"detach the bench pauses 20 ms and runs a tenth of a block unmeasured (the kernel's deferred work from changing "+
		"programs otherwise lands in the next block's CPU time). The cost is the "+
		"**CPU time** both ends' threads spend per round trip (CLOCK_THREAD_CPUTIME_ID of the client thread and of the "+
		"server's connection thread, which the server returns in its answer; this kernel has no IRQ time accounting, so "+
		"the loopback delivery and the hooks on it, run in softirq context of these threads, are included), compared "+
		"with **the same socket** with nothing attached, divided by %.2f hooked packets per round trip (the cgroup_skb "+
		"probe's own packet count). CPU time does not count the time a thread waits for the CPU, which makes it far "+
		"steadier than wall time on this shared 2-CPU machine. The estimate is the **paired median**: in each round, "+
		"a configuration's block minus its baseline's block of the same round (seconds apart, so the machine's drifts "+
		"cancel), the median over rounds (it drops the rounds that other processes hit), with the interquartile range; "+
		"the difference of the configurations' p10 and median block means over all rounds is shown beside it.\n\n", r.rounds, r.perBlock, nConfigs, r.pktsPerRT)
	fmt.Fprintf(&b, "Two designs side by side: the per-socket design (sockops, the default: bpf/sockops.bpf.c, "+
		"callbacks only on sockets opened to an API endpoint, on this kernel about one program run per "+
		"request/response) and the cgroup_skb design (the fallback: every packet of every pod). The sockops API "+
		"configurations run on a second connection that was opened with the probe attached (opt-in happens at "+
		"connect()) and are compared with that connection with nothing attached.\n\n")
	fmt.Fprintf(&b, "| CPU ns added per packet, end to end | target | paired median (IQR) | p10 | median |\n|---|---|---|---|---|\n")
	row := func(label, target string, cfg int) {
		k := r.pktsPerRT
		fmt.Fprintf(&b, "| %s | %s | **%.0f** (%.0f to %.0f) | %.0f | %.0f |\n", label, target, r.pairedMed[cfg]/k,
			r.pairedQ1[cfg]/k, r.pairedQ3[cfg]/k, r.added(&r.cpuP10, cfg), r.added(&r.cpuMed, cfg))
	}
	row("**sockops**, API-server packet", "≤100", cfgSockAPI)
	row("**sockops**, other packet", "≤5", cfgSockOther)
	row("sockops hook alone (empty program, API socket)", "", cfgSockEmpty)
	row("sockops, API-server packet of a cgroup without a slot (two hash lookups per response, as before slots)", "", cfgSockAPIHash)
	row("cgroup_skb, API-server packet", "", cfgSkbAPI)
	row("cgroup_skb, other packet", "", cfgSkbOther)
	row("cgroup_skb hook alone (empty programs)", "", cfgSkbEmpty)
	fmt.Fprintf(&b, "\nPer configuration, ns per round trip (CPU p10 / median; wall p10 / median):\n\n")
	fmt.Fprintf(&b, "| configuration | CPU p10 | CPU median | wall p10 | wall median |\n|---|---|---|---|---|\n")
	for i := range nConfigs {
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f |\n", configNames[i], r.cpuP10[i], r.cpuMed[i], r.wallP10[i], r.wallMed[i])
	}
	perReq := "no: the kernel does not pass the RTT sample to sockops (< 6.10), egress callbacks stay on"
	if r.oneRunPerRequest {
		perReq = "yes (the kernel passes the RTT sample to RTT_CB)"
	}
	fmt.Fprintf(&b, "\nsockops on the real path (bpf_stats): %.0f ns per program run, %.2f runs per round trip; "+
		"one run per request/response on this kernel: %s. Other sockets of the pods run the program only on "+
		"connection events (connect, established, state), never per packet: measured on the plain connection with "+
		"sockops attached, %.3f program runs per round trip. Counting needs no per-packet run: each run folds the "+
		"socket's cumulative counters (bytes_sent, bytes_received, segments in and out) into the pod's counters, and the "+
		"close flushes the rest.\n\n", r.sockRun, r.sockRunsPerRT, perReq, r.sockOtherRunsPerRT)
	fmt.Fprintf(&b, "Cgroup slots: a cgroup's first API connect takes a slot index (a queue of free indexes), and its "+
		"sockets fold counters and latency into that slot's per-CPU array value: array lookups, inlined by the verifier, "+
		"instead of two hash lookups per response (the per-cgroup counters and the latency histogram). A cgroup that "+
		"finds no slot free (--bpf.api-slots, default %d) is counted through the hash maps, as exactly: per program run "+
		"(bpf_stats, the stats' own clock reads included) %.0f ns with a slot, %.0f ns without.\n\n",
		probe.DefaultAPISlots, r.sockRun, r.sockRunHash)
	fmt.Fprintf(&b, "cgroup_skb programs on the real path (same traffic, kernel BPF run-time statistics enabled for "+
		"this phase only; ns per program run, the stats' own clock reads are the empty program's figure):\n\n")
	fmt.Fprintf(&b, "| per program run | measured | minus empty program |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| API-server packet | %.0f | %.0f |\n", r.realMatch, r.realMatch-r.realEmpty)
	fmt.Fprintf(&b, "| other packet | %.0f | %.0f |\n", r.realOther, r.realOther-r.realEmpty)
	fmt.Fprintf(&b, "| empty program | %.0f | |\n\n", r.realEmpty)
	fmt.Fprintf(&b, "cgroup_skb program alone (BPF_PROG_TEST_RUN, egress, minus an empty cgroup_skb program's %.0f ns "+
		"loop cost): API packet %.0f ns, other packet %.0f ns. The end-to-end figure adds the hook's own cost "+
		"(__cgroup_bpf_run_filter_skb, run array, migrate_disable) that any attached program pays, which is why the "+
		"per-socket design attaches nothing to the path of other packets and runs once per request/response on API "+
		"sockets rather than once per packet.\n\n", r.progBase, r.progMatch-r.progBase, r.progOther-r.progBase)
	return b.String()
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// progCosts times the egress program with BPF_PROG_TEST_RUN (ns per run): API packet, other packet, and an empty
// program (the test-run loop's own cost).
func progCosts(p *probe.Probe) (match, other, base float64, err error) {
	if err := p.SetEndpoints([]probe.Endpoint{{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443}}); err != nil {
		return 0, 0, 0, err
	}
	const n = 2_000_000
	bench := func(prog *ebpf.Program, dst string) (float64, error) {
		pkt := tcp4Packet(netip.MustParseAddrPort("10.244.1.5:40000"), netip.MustParseAddrPort(dst), 64)
		best := 0.0
		for i := range 5 {
			_, d, err := prog.Benchmark(pkt, n, nil)
			if err != nil {
				return 0, err
			}
			if ns := float64(d.Nanoseconds()); i == 0 || ns < best {
				best = ns
			}
		}
		return best, nil
	}
	objs := p.Objects()
	if match, err = bench(objs.FanoutEgress, "10.96.0.1:443"); err != nil {
		return
	}
	if other, err = bench(objs.FanoutEgress, "10.96.0.2:443"); err != nil {
		return
	}
	empty, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupSKB, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		return
	}
	defer empty.Close()
	base, err = bench(empty, "10.96.0.1:443")
	return
}

func tcp4Packet(src, dst netip.AddrPort, payload int) []byte {
	b := make([]byte, 14+20+20+payload)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(40+payload))
	ip[8], ip[9] = 64, 6
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	tcp[12] = 5 << 4
	return b
}
