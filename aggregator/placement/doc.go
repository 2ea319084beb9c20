// Package placement answers "how many pods will workload Kind/namespace/name have at full placement" from the API
// server, for the detector's projection: DaemonSets (status.desiredNumberScheduled), Deployments, standalone
// ReplicaSets and StatefulSets (spec.replicas), overridden by a HorizontalPodAutoscaler's spec.maxReplicas. Only the
// aggregator watches them, one watch per kind (client-go informers whose cache keeps a trimmed copy of each object),
// and keeps the last values while the API server is down. Memory is bounded by a cap on tracked objects.
package placement
