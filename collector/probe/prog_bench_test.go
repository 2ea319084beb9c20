package probe

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// BPF_PROG_TEST_RUN timing of the programs alone (no hook overhead); bench/probe measures end to end.
func benchProg(b *testing.B, egress bool, dst string) {
	p := newTestProbe(b, Config{})
	if err := p.SetEndpoints([]Endpoint{{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443}}); err != nil {
		b.Fatal(err)
	}
	pod := netip.MustParseAddrPort("10.244.1.5:40000")
	pkt := packet(pod, netip.MustParseAddrPort(dst), 6, 64)
	prog := p.objs.FanoutIngress
	if egress {
		prog = p.objs.FanoutEgress
	}
	b.ResetTimer()
	_, d, err := prog.Benchmark(pkt, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
}

func BenchmarkProgEgressMatch(b *testing.B) { benchProg(b, true, "10.96.0.1:443") }
func BenchmarkProgEgressOther(b *testing.B) { benchProg(b, true, "10.96.0.2:443") }

// BenchmarkProgBaseline times an empty cgroup_skb program: the BPF_PROG_TEST_RUN loop's own cost per run.
func BenchmarkProgBaseline(b *testing.B) {
	requirePrivileged(b)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupSKB,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	pkt := packet(netip.MustParseAddrPort("10.244.1.5:40000"), netip.MustParseAddrPort("10.96.0.1:443"), 6, 64)
	b.ResetTimer()
	_, d, err := prog.Benchmark(pkt, b.N, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(d.Nanoseconds()), "ns/run")
}
