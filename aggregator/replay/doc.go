// Package replay runs the real aggregator engine over a scenario in simulated time, as fast as it can: it expands
// the scenario into per-node, per-second counters exactly as agents would report them (Poisson request counts,
// deterministic from the scenario's seed), feeds them to the engine, applies its directives the way agents would
// (blocked pods send nothing; releases follow the ramp), and reports every decision plus a summary with the
// projected collapse time of the unmitigated API server and the lead time of the first trip.
package replay
