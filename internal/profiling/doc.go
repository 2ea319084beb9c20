// Package profiling runs continuous profiling with pyroscope-go for fanout's binaries: CPU, allocations, goroutines
// and mutex/block contention are pushed to a Pyroscope (or Grafana) ingest endpoint. Disabled when no URL is set.
package profiling
