// Package ingest validates agents' NodeReports and converts them into the engine's per-second reports: every field
// is checked (names, workload identities, counter ranges, duplicates), errors name the field, and nothing in a report
// can crash the aggregator. Fuzzed.
package ingest
