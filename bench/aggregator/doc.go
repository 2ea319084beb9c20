// Command aggregator benchmarks the aggregator's ingest path end to end: it starts the real fanout-aggregator
// binary on loopback, connects 10,000 synthetic agents over real gRPC (report streams multiplexed over a few
// connections), sends one report per agent per second, injects synchronized surges, and measures the aggregator
// process's CPU and RSS and the onset -> decision latency as seen by every agent (time from the start of the surging
// second until the agent receives the block directive). Results replace the "Aggregator ingest" section of
// BENCHMARKS.md.
package main
