package fleet

// View is one workload's state at the end of a closed second.
type View struct {
	ID         WorkloadID
	Name, Kind string
	// Now is the fleet total of the closed second.
	Now Counters
	// BaseRequests and BaseRxBytes are the slow per-pod baselines (learned while not surging) times the pods
	// reporting now; BasePerPodRequests is the per-pod baseline; BaseKnown says it has warmed up.
	BaseRequests, BaseRxBytes         float64
	BasePerPodRequests                float64
	BaseKnown                         bool
	Pods, MaxPods, DesiredPods, Nodes uint32
	// CostRequests and CostRxBytes are the moving average per-pod cost, per second.
	CostRequests, CostRxBytes float64
	// ObservedRequests is the number of requests the cost estimate rests on.
	ObservedRequests float64
	// LastGrowth is the second the workload's pods per reporting node last reached a new maximum.
	LastGrowth, FirstSecond int64
	// SyncNodes is how many nodes' per-pod rate jumped (vs their own baseline) within the surge window;
	// EstablishedNodes is how many nodes have a baseline.
	SyncNodes, EstablishedNodes int
	Frozen                      bool
	// Arrived: the workload first appeared after the fleet had been watched for a warm-up (a rollout, not a
	// workload that was there before the aggregator started).
	Arrived bool
}

// Snapshot is the fleet at the end of one closed second.
type Snapshot struct {
	Second         int64
	NodesReporting int
	// NodesKnown counts nodes that reported within the forget window (the fleet size).
	NodesKnown int
	FleetPods  uint32
	Total      Counters
	Workloads  []View
}
