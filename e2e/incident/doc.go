// Package incident replays the fleet incident fanout exists for, on a real kube-apiserver with a simulated fleet:
// a healthy baseline (system DaemonSets making light calls on every node), then a "telemetry" DaemonSet rolled out to
// every node doing cluster-wide LISTs against an expensive dataset, while an unrelated normal user's GET latency is
// measured throughout. A Guard (fanout's agents and aggregator) plugs in to protect the API server; without one the
// run shows the unprotected collapse. The run prints a live account, and its Result renders the HTML report.
package incident
