// Package probe loads fanout's traffic probe (bpf/traffic.bpf.c), attaches it at a cgroup with BPF links, pins its
// maps and links under the agent instance's pin dir (so counting and enforcement survive agent restarts), maintains
// the API-server endpoint set and reads the per-cgroup counters and map pressure.
package probe
