// Package ramp is the release-placement contract: given a release's start, duration, steps and jitter, it says when
// node N re-admits the workload. The aggregator (what it tells agents and what it reports), the agent (what it does)
// and replay (what it models) all run this code, so the ramp the fleet runs is the ramp replay measures.
//
// The contract, which every implementation must keep bit for bit:
//   - A node's hash is h = splitmix64(FNV-1a 64 of the node name's bytes); its position is p = (h >> 11) / 2^53:
//     uniform in [0, 1) and stable across processes, replicas and versions.
//   - Step k (k = 0..steps-1) starts at start + duration*k/steps and releases the nodes with k/steps <= p < (k+1)/steps,
//     i.e. after step k the fraction (k+1)/steps of the fleet is released (a node released at one fraction stays
//     released at every larger one). steps <= 1 or duration <= 0 is a single step at start.
//   - A node adds its own jitter in [0, jitter): splitmix64(h) modulo jitter in nanoseconds.
//   - Every node is released by start + duration*(steps-1)/steps + jitter (End).
//
// A node holds the whole workload's pods on it until its time comes (one DaemonSet pod per node comes back over the
// ramp, not within the jitter).
package ramp
