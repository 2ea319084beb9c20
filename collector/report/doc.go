// Package report is the agent's side of the wire protocol: it streams the node's one-second reports to every
// aggregator replica on a static address list (no DNS needed), receives each replica's directive set, merges them
// (any replica, or a majority, must ask for a block) and hands merged block/release directives to a handler. It never
// blocks the caller: each replica has a bounded buffer that drops its oldest report when full (and counts it), and
// lost connections are retried with jittered exponential backoff.
package report
