// Command probe is the `make bench-probe` benchmark: the cost the traffic probe adds per packet, measured end to end
// with interleaved A/B blocks in one process (programs attached vs detached, each compared with the same socket with
// nothing attached) over a 64-byte request/response TCP exchange on loopback, for API-server packets and for other
// packets, in both designs (per-socket sockops and the cgroup_skb fallback). The cost is the CPU time of both ends'
// threads (CLOCK_THREAD_CPUTIME_ID), steadier than wall time on a shared machine; wall time is reported beside it.
// It adds the programs' own cost from kernel BPF statistics and BPF_PROG_TEST_RUN, and writes the "Probe overhead"
// section of BENCHMARKS.md.
//
// FANOUT_BENCH_DUMP=<file> writes every block's CPU time per round trip, per configuration, as JSON (for looking at
// the distributions behind the report).
package main
