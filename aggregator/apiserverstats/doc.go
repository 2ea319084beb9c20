// Package apiserverstats reads the API server's own flow-control telemetry for the headroom estimator: it scrapes
// kube-apiserver's /metrics on every replica (or reads the same series from a Prometheus server), keeps only the
// flow-control and request-latency series of the non-exempt priority levels, bounds everything it reads (body size,
// series, label lengths: the page is input), and turns consecutive scrapes into per-interval readings (histogram and
// counter deltas). Discovery finds the replicas in the EndpointSlices of Service default/kubernetes (one LIST a
// minute) and keeps the Scraper's URL set current.
package apiserverstats
