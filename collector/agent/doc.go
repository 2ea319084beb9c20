// Package agent is the node agent's run loop: every tick it reads the per-cgroup counters, computes deltas,
// attributes cgroups to pods and workloads (or systemd units) and publishes a Snapshot for the report sender, and
// keeps cumulative totals for the Prometheus collector (collector/metrics).
package agent
