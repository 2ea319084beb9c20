// Package engine is the aggregator's core: it owns the fleet windows, the detector and the kill switch behind one
// lock, takes validated reports, closes seconds (driven by wall time in the server, by simulated time in replay),
// records every decision to an audit sink, and serves status and the current directive set.
package engine
