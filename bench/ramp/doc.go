// Command ramp is the `make bench-ramp` benchmark: how a release spreads a fleet's re-admissions over time with the
// aggregator's default flags, computed with the placement every agent runs (api/ramp) for fleets of realistic node
// names. It reports the share of the fleet per step, the largest share re-admitted within any one second (the herd
// the API server sees) and the first and last re-admission, beside what the release looked like before placement
// was fleet-wide (each node re-admitting its own pods within the jitter), and writes the "Release ramp spread"
// section of BENCHMARKS.md.
package main
