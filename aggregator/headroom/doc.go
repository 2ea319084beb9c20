// Package headroom learns how much more load the API server can take, so that fanout protects a cluster without
// being told the API server's capacity.
//
// Two kinds of signals enter an Estimator:
//
//   - APIServerSample: one scrape of one kube-apiserver replica's flow-control telemetry (/metrics directly, or the
//     same series from Prometheus): seats executing and the nominal seat limit summed over the non-exempt priority
//     levels, requests waiting in queues, the cumulative rejection counter, and summaries of the request wait and
//     request duration histograms over the scrape interval. Only what a real API server exposes; never its capacity.
//   - NodeSignals: what the nodes' kernels saw of the API server's answers during one second (time to first response
//     byte, failed connects, resets), summed fleet-wide over every workload's agent report. This is the signal left
//     when the API server's metrics are unavailable.
//
// Once per closed second the aggregator also gives the estimator fanout's own measurement of the load (Load: the
// fleet's requests/s and response bytes/s, from every node's kernel). The estimator pairs the API server's
// utilization with that load and fits the API server's cost per unit of load, hence its capacity in requests/s and in
// response bytes/s: the units the detector's projections use. The result, an Estimate, carries the utilization now per
// source, the capacities, a confidence and the basis it rests on.
//
// A saturated API server shows its capacity directly: the load it serves then caps both capacities. Not while it
// drains: when the load that saturated it falls away (the kill switch acted, clients gave up), it stays saturated,
// then busy, for up to a minute while it finishes requests whose clients are gone, and the little load fanout still
// measures is not what loads it; such readings are not learned from. A load served below saturation since the last
// saturation, fitted or read too calm to fit, floors both capacities, so the model never reads a load the API server
// carried calmly as an overload.
//
// The estimator is pure: time comes in with the samples (clock injected), no goroutines, no I/O except Save/Restore
// of its state (atomic write, bounded size, versioned).
package headroom
