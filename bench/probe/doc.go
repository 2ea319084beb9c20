// Command probe is the `make bench-probe` benchmark: the cost the traffic probe adds per packet, measured end to end
// with interleaved A/B blocks in one process (programs attached vs detached) over a 64-byte request/response TCP
// exchange on loopback, for API-server packets and for other packets; plus the programs' own cost from
// BPF_PROG_TEST_RUN. It writes the "Probe overhead" section of BENCHMARKS.md.
package main
