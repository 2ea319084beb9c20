// Package report writes the e2e run's account as one self-contained HTML page (no scripts, no external assets): a
// summary table and line charts drawn as inline SVG (API rate per workload, the API server's latency for an unrelated
// client) with vertical marks for onset, trip, enforcement and release.
package report
