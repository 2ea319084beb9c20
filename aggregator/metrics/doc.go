// Package metrics exposes the aggregator's fleet view as Prometheus metrics (a prometheus.Collector over the
// engine, registered on an injected registry): per-workload fleet rates, synchronized nodes, projected load, state,
// decisions, API server utilization and nodes reporting.
package metrics
