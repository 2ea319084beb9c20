// Command attack benchmarks the aggregator under a workload-name cardinality attack (issue 10, finding 2): it starts
// the real fanout-aggregator binary on loopback with node-bound agent tokens, runs one well-behaved agent reporting
// five workloads every second (600 ms after the second ends, amid the attackers' bursts), and three attacker nodes,
// each with its own credential, that every second send reports with 10,000 fresh workload names and 10,000 fresh pods
// (through both the workloads and the pods field), repeat a second, claim a 1 ns interval, and reconnect every few
// seconds. It samples the aggregator's RSS from /proc every 250 ms and scrapes /metrics every 500 ms, checks the
// agent's workloads in the admin Status at their exact rate, and fails (exit 1) when RSS exceeds 512 MiB, a scrape
// takes longer than 2 s, or any of the agent's reports is rejected. Results replace the "Cardinality attack" section
// of BENCHMARKS.md.
package main
