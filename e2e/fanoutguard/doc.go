// Package fanoutguard runs fanout itself in the e2e: one fanout-agent process per simulated node (attached at that
// node's kubepods cgroup, its own BPF pin dir, its own API-server user) and one fanout-aggregator, as real processes
// built from this repository. It implements incident.Guard: decisions come from the aggregator's audit log, and
// "enforced" events from each agent's fanout_agent_blocks_active metric. Every process is stopped by PID and every
// agent instance uninstalled (links and pins removed) on Close.
package fanoutguard
