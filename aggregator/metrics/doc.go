// Package metrics exposes the aggregator's fleet view as Prometheus metrics (a prometheus.Collector over the
// engine, registered on an injected registry): per-workload fleet rates, synchronized nodes, projected load, state,
// decisions, API server utilization and nodes reporting.
//
// The per-workload series are bounded (Config.TopWorkloads, flag --metrics.top-workloads, default 200): a fleet may
// hold up to fleet.max-workloads names (20,000), and a hostile node credential can fill them with fresh names, which
// made a scrape grow with every name held (seconds of /metrics and hundreds of thousands of series). A scrape exports
// under its own name every workload whose kill-switch state is not observe (alert, trip, releasing, released) or whose
// release is held, whatever its load, so the alert rules on fanout_workload_state, _release_held and
// _enforcement_coverage_ratio keep their series; then, up to the bound, the busiest by fleet requests, response bytes
// and connects per second, taking each ranking in turn (its top third of the bound is always in). The rest are one
// workload="other": the sum of their rates, the most synchronized nodes and the highest projected load of any of them,
// state observe; fanout_aggregator_workloads_folded says how many. Picking the top is O(n log k), one bounded heap per
// ranking. The closed-loop coverage series exist only for tripped workloads. fanout_decisions_total is bounded by the
// engine (engine.MaxDecisionWorkloads): it names the most recently decided workloads and every one not in observe;
// the counts of a name it drops move into workload="other", so the sum over workloads never decreases (other grows
// then without a new decision). A scrape reads the engine's Summary: its workloads unordered, one lookup each, no
// sort of all n.
package metrics
