// Package fleet keeps the aggregator's per-second view of the fleet: reports are added into one-second windows
// (a small ring, so late reports for a still-open second count), and closing a second folds it into per-workload
// fleet totals, per-pod cost, baselines and, per (workload, node), a compact baseline used to count nodes whose rate
// jumped at the same time. Memory is O(workloads + workload-node pairs) with constant-size state: no per-pod or
// per-second history is kept.
package fleet
