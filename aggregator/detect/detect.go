package detect

import (
	"math"
	"sort"

	"github.com/fanoutdev/fanout/aggregator/fleet"
)

// Finding is what one closed second says about one workload.
type Finding struct {
	ID       fleet.WorkloadID
	Workload string
	View     fleet.View

	// (a) synchronized surge.
	Surge  bool
	Threat bool
	// Hot: the fleet rate is far above baseline (possibly from few nodes).
	Hot bool
	// ExcessShare is the load above baseline as a share of capacity; Share is the current load's share.
	ExcessShare, Share float64

	// (b) projection to full placement.
	RollingOut    bool
	TargetPods    uint32
	Projected     float64 // projected utilization with this workload at full placement
	ProjectedOver bool
	ProjectedWarn bool
	// CollapseETA is the estimated seconds until the API server saturates at the current rollout pace (-1 unknown).
	CollapseETA float64
	SizeScaled  bool

	// (c) overload contributor.
	Contributor bool
}

// Result is the detector's view of one closed second.
type Result struct {
	Second         int64
	NodesReporting int
	Utilization    float64
	Total          fleet.Counters
	// FleetWide is set when most workloads surge at once (API server restart / relist storm).
	FleetWide     bool
	SurgingCount  int
	Overloaded    bool
	Contributors  []string // by excess share, largest first
	Findings      []Finding
	CapacityKnown bool
	// Coverage is the share of known nodes that reported this second.
	Coverage float64
}

// Detector keeps the little history projection needs (pod counts a minute ago), O(workloads).
type Detector struct {
	cfg     Config
	history map[fleet.WorkloadID]*podHistory
	placer  Placement
}

const historyLen = 64

type podHistory struct {
	pods [historyLen]uint32
	secs [historyLen]int64
}

// New returns a detector.
func New(cfg Config) *Detector {
	return &Detector{cfg: cfg, history: map[fleet.WorkloadID]*podHistory{}}
}

// Config returns the detector's configuration.
func (d *Detector) Config() Config { return d.cfg }

// SetCapacity changes the capacity model.
func (d *Detector) SetCapacity(requestsPerS, rxBytesPerS float64) {
	d.cfg.CapacityRequestsPerS, d.cfg.CapacityRxBytesPerS = requestsPerS, rxBytesPerS
}

// Utilization is the load as a share of capacity: the larger of the request and the byte ratios.
func (d *Detector) Utilization(c fleet.Counters) float64 {
	u := 0.0
	if d.cfg.CapacityRequestsPerS > 0 {
		u = math.Max(u, c.Requests/d.cfg.CapacityRequestsPerS)
	}
	if d.cfg.CapacityRxBytesPerS > 0 {
		u = math.Max(u, c.RxBytes/d.cfg.CapacityRxBytesPerS)
	}
	return u
}

func (d *Detector) capacityKnown() bool {
	return d.cfg.CapacityRequestsPerS > 0 || d.cfg.CapacityRxBytesPerS > 0
}

// Evaluate computes the findings of one closed second.
func (d *Detector) Evaluate(s *fleet.Snapshot, res *Result) {
	cfg := d.cfg
	known := d.capacityKnown()
	*res = Result{Second: s.Second, NodesReporting: s.NodesReporting, Total: s.Total, CapacityKnown: known, Findings: res.Findings[:0], Contributors: res.Contributors[:0]}
	// Nodes that missed this second's report are extrapolated from those that reported; with fewer than half
	// reporting, capacity rules wait for better data.
	k := 1.0
	if s.NodesReporting > 0 && s.NodesKnown > s.NodesReporting {
		k = float64(s.NodesKnown) / float64(s.NodesReporting)
	}
	complete := s.NodesReporting > 0 && 2*s.NodesReporting >= s.NodesKnown
	res.Coverage = 1 / k
	res.Utilization = d.Utilization(scale(s.Total, k))
	established := 0
	for i := range s.Workloads {
		v := &s.Workloads[i]
		f := Finding{ID: v.ID, Workload: v.Name, View: *v, CollapseETA: -1}
		excess := fleet.Counters{Requests: math.Max(0, v.Now.Requests-v.BaseRequests), RxBytes: math.Max(0, v.Now.RxBytes-v.BaseRxBytes)}
		f.ExcessShare = d.Utilization(scale(excess, k))
		f.Share = d.Utilization(scale(v.Now, k))
		if v.EstablishedNodes > 0 {
			established++
		}
		min := cfg.SurgeMinNodes
		if frac := int(math.Ceil(cfg.SurgeMinFraction * float64(v.EstablishedNodes))); frac > min {
			min = frac
		}
		f.Surge = v.SyncNodes >= min
		if known {
			f.Threat = f.ExcessShare >= cfg.ThreatShare || res.Utilization >= cfg.ThreatUtilization
			f.Hot = v.BaseKnown && v.BaseRequests > 0 && v.Now.Requests >= cfg.HotFactor*v.BaseRequests && f.ExcessShare >= cfg.HotMinShare
		} else {
			f.Threat = true
			f.Hot = v.BaseKnown && v.BaseRequests > 0 && v.Now.Requests >= cfg.HotFactor*v.BaseRequests+50
		}
		if complete {
			d.project(s, v, &f, k, res.Utilization)
		}
		// A workload still rolling out grows by design: the projection judges it, not the hot rule.
		f.Hot = f.Hot && !f.RollingOut
		if f.Surge || f.Hot {
			res.SurgingCount++
		}
		res.Findings = append(res.Findings, f)
	}
	res.FleetWide = res.SurgingCount >= cfg.FleetWideMinWorkloads &&
		float64(res.SurgingCount) >= cfg.FleetWideFraction*float64(max(established, 1))
	if known && complete && res.Utilization >= cfg.OverloadAlert {
		res.Overloaded = true
		idx := make([]int, 0, 4)
		for i := range res.Findings {
			if res.Findings[i].ExcessShare >= cfg.TopShare {
				res.Findings[i].Contributor = true
				idx = append(idx, i)
			}
		}
		sort.SliceStable(idx, func(a, b int) bool {
			fa, fb := &res.Findings[idx[a]], &res.Findings[idx[b]]
			if fa.ExcessShare != fb.ExcessShare {
				return fa.ExcessShare > fb.ExcessShare
			}
			return fa.Workload < fb.Workload
		})
		for _, i := range idx {
			res.Contributors = append(res.Contributors, res.Findings[i].Workload)
		}
	}
}

func scale(c fleet.Counters, k float64) fleet.Counters {
	return fleet.Counters{Connects: c.Connects * k, Requests: c.Requests * k, TxBytes: c.TxBytes * k, RxBytes: c.RxBytes * k}
}

// project fills the projection fields of f; k extrapolates to nodes that missed this second's report.
func (d *Detector) project(s *fleet.Snapshot, v *fleet.View, f *Finding, k, util float64) {
	cfg := d.cfg
	h := d.history[v.ID]
	if h == nil {
		h = &podHistory{}
		d.history[v.ID] = h
	}
	slot := s.Second % historyLen
	h.pods[slot], h.secs[slot] = v.Pods, s.Second

	target := v.MaxPods
	placed := d.fullPlacement(v.Name)
	switch {
	case placed > 0:
		target = placed
	case v.DesiredPods > 0:
		target = v.DesiredPods
	case v.Kind == "DaemonSet":
		target = uint32(max(s.NodesKnown, s.NodesReporting))
	}
	f.TargetPods = target
	if !d.capacityKnown() || target == 0 {
		return
	}
	growing := s.Second-v.LastGrowth <= int64(cfg.GrowthWindow.Seconds())
	// Agents leave idle pods out of reports, so the pods present (and the per-pod cost) settle over the first
	// seconds of a workload: project only after ProjectionMinAge.
	confident := int(v.Pods) >= cfg.ProjectionMinPods && v.ObservedRequests >= cfg.ProjectionMinRequests &&
		s.Second-v.FirstSecond >= int64(cfg.ProjectionMinAge.Seconds())
	pods := float64(v.Pods) * k
	f.RollingOut = v.Pods > 0 && pods < 0.98*float64(target) && growing
	// Projection: the others as they are now, this workload at full placement at its per-pod cost.
	others := scale(fleet.Counters{Requests: math.Max(0, s.Total.Requests-v.Now.Requests), RxBytes: math.Max(0, s.Total.RxBytes-v.Now.RxBytes)}, k)
	projReq := v.CostRequests * float64(target)
	projRx := v.CostRxBytes * float64(target)
	if v.CostRequests > 0 && v.CostRxBytes/v.CostRequests >= cfg.SizeScaledBytes && s.FleetPods > 0 && target > v.Pods {
		// List-sized responses grow with the pods this rollout still adds.
		f.SizeScaled = true
		projRx *= float64(s.FleetPods+target-v.Pods) / float64(s.FleetPods)
	}
	f.Projected = d.Utilization(fleet.Counters{Requests: others.Requests + projReq, RxBytes: others.RxBytes + projRx})
	if !confident {
		return
	}
	// Only a workload whose own growth carries the API server over is a culprit, not one rolling out into an
	// API server that others already overload.
	f.ProjectedOver = f.RollingOut && f.Projected >= cfg.ProjectedTrip && f.Projected-util >= cfg.ProjectedMinGrowth
	f.ProjectedWarn = f.RollingOut && f.Projected >= cfg.ProjectedAlert
	// ETA: pods at which utilization reaches 1, at the pod growth rate over the last minute.
	perPod := d.Utilization(fleet.Counters{Requests: v.CostRequests, RxBytes: v.CostRxBytes})
	if perPod <= 0 {
		return
	}
	othersUtil := d.Utilization(others)
	collapsePods := (1 - othersUtil) / perPod
	_ = pods
	// Growth rate over the oldest sample still held (up to a minute ago).
	old := -1
	for i := range h.secs {
		if h.secs[i] > 0 && h.secs[i] < s.Second && (old < 0 || h.secs[i] < h.secs[old]) {
			old = i
		}
	}
	if old >= 0 && v.Pods > h.pods[old] {
		rate := float64(v.Pods-h.pods[old]) / float64(s.Second-h.secs[old])
		f.CollapseETA = math.Max(0, (collapsePods-float64(v.Pods))/rate)
	}
}
