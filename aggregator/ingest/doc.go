// Package ingest validates agents' NodeReports and converts them into the engine's per-second reports: every field
// is checked (names, workload identities, counter ranges, duplicates), errors name the field, and nothing in a report
// can crash the aggregator. Fuzzed. Limiters bound the workload names each node may introduce (per report, per minute,
// in all), one limiter per node shared by all its streams, so that reconnecting does not refill the budget.
package ingest
