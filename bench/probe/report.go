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

type result struct {
	rounds, perBlock         int
	pktsPerRT                float64
	rtNs                     [6]float64
	matchPerPkt, otherPerPkt float64
	matchMed, otherMed       float64
	rtMed                    [6]float64
	hookPerPkt, hookMed      float64
	realMatch, realOther     float64 // ns per program run on the real path (bpf_stats)
	realEmpty                float64
	progMatch, progOther     float64
	progBase                 float64

	sockPktsPerRT                 float64
	sockAPIPerPkt, sockAPIMed     float64
	sockOtherPerPkt, sockOtherMed float64
	sockRatio, skbRatio           float64
	sockRun, sockRunsPerRT        float64
	sockOtherRunsPerRT            float64
}

func (r result) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Probe overhead\n\n")
	fmt.Fprintf(&b, "`make bench-probe` (bench/probe), %s, kernel %s, %d CPUs, Go %s.\n\n", time.Now().UTC().Format("2006-01-02"),
		kernelRelease(), runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(&b, "End to end: one TCP connection over loopback, 64-byte request / 64-byte response with blocking "+
		"syscalls; the client's cgroup is below the attach point, the echo server's is not. %d rounds; each round runs "+
		"%d round trips in each configuration, back to back in rotating order: detached; attached with the server in "+
		"api_endpoints (API packets); attached with another endpoint set (other packets); empty cgroup_skb programs "+
		"attached (the kernel hook's own cost). Costs are per hooked packet (%.2f per round trip, from the probe's "+
		"own packet counters).\n\n", r.rounds, r.perBlock, r.pktsPerRT)
	fmt.Fprintf(&b, "Wall-clock A/B: (configuration − detached) round-trip time per hooked packet. Other processes "+
		"share the 2 CPUs and only ever add time, so the p10 of per-block means is the estimate (the median is shown; "+
		"both are noisy on this shared machine).\n\n")
	fmt.Fprintf(&b, "Two designs side by side, interleaved in the same rounds: the per-socket design (sockops, the "+
		"default: bpf/sockops.bpf.c, callbacks only on sockets opened to an API endpoint) and the cgroup_skb design "+
		"(the fallback: every packet of every pod). The sockops API configuration runs on a second connection that "+
		"was opened with the probe attached (opt-in happens at connect()); the plain connection serves the others.\n\n")
	fmt.Fprintf(&b, "| ns added per packet, end to end | target | p10 | median |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| **sockops**, API-server packet | ≤100 | %.0f | %.0f |\n", r.sockAPIPerPkt, r.sockAPIMed)
	fmt.Fprintf(&b, "| **sockops**, other packet | ≤5 | %.0f | %.0f |\n", r.sockOtherPerPkt, r.sockOtherMed)
	fmt.Fprintf(&b, "| cgroup_skb, API-server packet | | %.0f | %.0f |\n", r.matchPerPkt, r.matchMed)
	fmt.Fprintf(&b, "| cgroup_skb, other packet | | %.0f | %.0f |\n", r.otherPerPkt, r.otherMed)
	fmt.Fprintf(&b, "| kernel cgroup_skb hook alone (empty programs attached) | | %.0f | %.0f |\n\n", r.hookPerPkt, r.hookMed)
	fmt.Fprintf(&b, "Round trip wall p10 / median (ns): detached %.0f / %.0f, cgroup_skb API %.0f / %.0f, "+
		"cgroup_skb other %.0f / %.0f, empty cgroup_skb programs %.0f / %.0f, sockops API %.0f / %.0f, sockops other "+
		"%.0f / %.0f. Median round-trip ratio over detached: sockops API %.3f, cgroup_skb API %.3f.\n\n",
		r.rtNs[0], r.rtMed[0], r.rtNs[1], r.rtMed[1], r.rtNs[2], r.rtMed[2], r.rtNs[3], r.rtMed[3],
		r.rtNs[4], r.rtMed[4], r.rtNs[5], r.rtMed[5], r.sockRatio, r.skbRatio)
	fmt.Fprintf(&b, "sockops on the real path (bpf_stats): %.0f ns per program run, %.2f runs per round trip "+
		"(egress skbs, RTT samples, slow-path ingress; the probe counted %.2f packets per round trip). Other "+
		"sockets of the pods run the program only on connection events (connect, established, state), never per "+
		"packet: measured on the plain connection with sockops attached, %.3f program runs per round trip.\n\n",
		r.sockRun, r.sockRunsPerRT, r.sockPktsPerRT, r.sockOtherRunsPerRT)
	fmt.Fprintf(&b, "Our programs on the real path (same traffic, kernel BPF run-time statistics enabled for this phase "+
		"only; ns per program run, the stats' own clock reads are the empty program's figure):\n\n")
	fmt.Fprintf(&b, "| per program run | measured | minus empty program |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| API-server packet | %.0f | %.0f |\n", r.realMatch, r.realMatch-r.realEmpty)
	fmt.Fprintf(&b, "| other packet | %.0f | %.0f |\n", r.realOther, r.realOther-r.realEmpty)
	fmt.Fprintf(&b, "| empty program | %.0f | |\n\n", r.realEmpty)
	fmt.Fprintf(&b, "Program alone (BPF_PROG_TEST_RUN, egress, minus an empty cgroup_skb program's %.0f ns loop cost): "+
		"API packet %.0f ns, other packet %.0f ns. The end-to-end figure adds the cgroup hook's own cost "+
		"(__cgroup_bpf_run_filter_skb, run array, migrate_disable) that any attached program pays.\n\n",
		r.progBase, r.progMatch-r.progBase, r.progOther-r.progBase)
	fmt.Fprintf(&b, "Where the cost goes (development measurements on this machine, real path, ns per program run "+
		"over the empty program): the kernel's cgroup_skb hook itself (run array, cb save/restore, data_end, "+
		"migrate_disable) costs ~130 ns per packet end to end with *empty* programs, so no cgroup_skb design can reach "+
		"≤50 ns end to end here: measured against the targets, what our programs add on top of the hook is the "+
		"figure that a design can influence (tables above: real-path run time minus the empty program, and end-to-end "+
		"minus the empty-program row). "+
		"Other packets: ~10 ns — direct packet access (no bpf_skb_load_bytes), then one inlined ARRAY lookup "+
		"(api_filter) and two bit tests, no 20-byte key hashing. API packets: header parse + prefilter + "+
		"api_endpoints hash lookup was ~85 ns; the fast table of up to 8 IPv4 (address, port) endpoints inside the "+
		"api_filter value replaces jhash + bucket + element with one cache line (−30..40 ns); the rest is "+
		"bpf_skb_cgroup_id plus the per-CPU LRU counter lookup (~100 ns; a non-LRU per-CPU hash, whose lookup the "+
		"verifier inlines, saved only ~15 ns and would need user-space garbage collection, so LRU stays); the kill "+
		"switch check (blocked_active, one inlined ARRAY lookup while nothing is blocked) is within noise. The "+
		"BPF_PROG_TEST_RUN figures are lower than the real path because a tight loop keeps every map line in cache; "+
		"on the real path each map touched is a cache miss.\n\n")
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
