// Package aggproc runs the real fanout-aggregator binary for the benchmarks: on free loopback ports, with one bearer
// token per node (and an admin token), its log and audit file in a temporary directory. It samples the process's CPU
// and memory from /proc and reads its /metrics.
package aggproc
