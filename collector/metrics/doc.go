// Package metrics exposes the agent's per-pod and per-workload API-server traffic counters and the probe's map
// pressure as a prometheus.Collector, registered on a registry the caller owns (no global registry, no promauto).
// Values are read from a Source at scrape time; the agent implements Source.
package metrics
