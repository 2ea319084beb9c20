// Package engine is the aggregator's core: it owns the fleet windows, the detector and the kill switch behind one
// lock, takes validated reports, closes seconds (driven by wall time in the server, by simulated time in replay),
// records every decision to an audit sink, and serves status and the current directive set.
//
// Memory is bounded whatever the nodes send: the fleet bounds the workloads held, and the decision counts behind
// fanout_decisions_total keep at most MaxDecisionWorkloads workloads by name (the most recently decided) plus those
// in a kill-switch state other than observe; a dropped name's counts are added to the folded counts (decisions.go).
// Status is ordered for people (admin API, fanoutctl); Summary is the unordered, cheaper view a metrics scrape reads.
package engine
