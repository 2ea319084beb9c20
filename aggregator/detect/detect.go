package detect

import (
	"math"
	"sort"

	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/headroom"
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
	FleetWide    bool
	SurgingCount int
	Overloaded   bool
	// PauseBaselines: the overload is one the API server reports itself (or the only signal is the capacity told),
	// so no baseline should learn from this second (fleet.PauseBaselines).
	PauseBaselines bool
	// PauseArrivedBaselines: the API server reads busy (or PauseBaselines), so workloads that arrived while fanout
	// watched learn no baseline from this second (fleet.PauseArrivedBaselines).
	PauseArrivedBaselines bool
	Contributors          []string // by excess share, largest first
	Findings              []Finding
	CapacityKnown         bool
	// Coverage is the share of known nodes that reported this second.
	Coverage float64
	// Headroom is the estimate this second was judged with (learned, or the capacity flags').
	Headroom headroom.Estimate
	// ModelUtilization is the estimate's capacity applied to the load fanout measures now; Utilization is the larger
	// of it and what the API server (or, without its metrics, the nodes) says now.
	ModelUtilization float64
	// FleetBase is the sum of the workloads' baselines (for the pods present now); FleetRise is how far the fleet's
	// load is above it (the larger of the request and byte ratios minus one). With no headroom estimate, a surge
	// threatens only when FleetRise is at least Config.ColdFleetRise.
	FleetBase fleet.Counters
	FleetRise float64
	// scale extrapolates to nodes that missed this second's report.
	scale float64
	util  func(fleet.Counters) float64
}

// UtilizationWith returns the utilization the API server would be at with extra load added to this second's fleet
// total (0 when no capacity is known).
func (r *Result) UtilizationWith(extra fleet.Counters) float64 {
	if r.util == nil || !r.CapacityKnown {
		return 0
	}
	k := r.scale
	if k == 0 {
		k = 1
	}
	return r.util(fleet.Counters{Requests: r.Total.Requests*k + extra.Requests, RxBytes: r.Total.RxBytes*k + extra.RxBytes}) +
		math.Max(0, r.Utilization-r.ModelUtilization)
}

// Detector keeps the little history projection needs (pod counts a minute ago), O(workloads).
type Detector struct {
	cfg     Config
	history map[fleet.WorkloadID]*podHistory
	est     headroom.Estimate
	placer  Placement
}

const historyLen = 64

// rolloutPeakShare: a workload below this share of its peak pods of the last minute is not rolling out.
const rolloutPeakShare = 0.9

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

// SetCapacity changes the capacity flags (an override of the learned headroom).
func (d *Detector) SetCapacity(requestsPerS, rxBytesPerS float64) {
	d.cfg.CapacityRequestsPerS, d.cfg.CapacityRxBytesPerS = requestsPerS, rxBytesPerS
}

// SetEstimate sets the headroom estimate the next Evaluate judges with. Without one (or with an unknown one), the
// capacity flags are used as a flag estimate.
func (d *Detector) SetEstimate(est headroom.Estimate) { d.est = est }

// estimate returns the estimate in force: the one set when it knows a capacity, else the flags', else the unknown one.
func (d *Detector) estimate() headroom.Estimate {
	if d.est.Known() {
		return d.est
	}
	if d.cfg.CapacityRequestsPerS > 0 || d.cfg.CapacityRxBytesPerS > 0 {
		return headroom.Flag(d.cfg.CapacityRequestsPerS, d.cfg.CapacityRxBytesPerS)
	}
	if d.est.Source == "" {
		return headroom.Estimate{Source: headroom.SourceNone, UtilizationSeats: -1, UtilizationLatency: -1, UtilizationNodes: -1}
	}
	return d.est
}

// Utilization is the load as a share of the API server's capacity under the estimate in force (0 when unknown).
func (d *Detector) Utilization(c fleet.Counters) float64 {
	est := d.estimate()
	return est.UtilizationOf(headroom.Load{Requests: c.Requests, RxBytes: c.RxBytes})
}

// measuredBusy is how busy the API server reads now by its own metrics (seats, latency) or the nodes' latency,
// whatever the capacity: the largest reading, -1 when none says anything.
func (d *Detector) measuredBusy() float64 {
	e := &d.est
	u := math.Max(math.Max(e.UtilizationSeats, e.UtilizationLatency), e.UtilizationNodes)
	if e.Saturated {
		u = math.Max(u, 1)
	}
	if e.Source == "" && u == 0 {
		return -1 // never set
	}
	return u
}

func (d *Detector) capacityKnown() bool {
	est := d.estimate()
	return est.Known()
}

// Evaluate computes the findings of one closed second.
func (d *Detector) Evaluate(s *fleet.Snapshot, res *Result) {
	cfg := d.cfg
	est := d.estimate()
	known := est.Known()
	*res = Result{Second: s.Second, NodesReporting: s.NodesReporting, Total: s.Total, CapacityKnown: known, Findings: res.Findings[:0],
		Contributors: res.Contributors[:0], Headroom: est, util: d.Utilization}
	// Nodes that missed this second's report are extrapolated from those that reported; with fewer than half
	// reporting, capacity rules wait for better data.
	k := 1.0
	if s.NodesReporting > 0 && s.NodesKnown > s.NodesReporting {
		k = float64(s.NodesKnown) / float64(s.NodesReporting)
	}
	complete := s.NodesReporting > 0 && 2*s.NodesReporting >= s.NodesKnown
	res.Coverage = 1 / k
	res.scale = k
	res.ModelUtilization = d.Utilization(scale(s.Total, k))
	res.Utilization = res.ModelUtilization
	if est.Source == headroom.SourceLearned && est.UtilizationSource != headroom.FromModel &&
		(est.Utilization > res.Utilization || est.Confidence < cfg.ModelMinConfidence) {
		// What the API server says now wins over the model when it is busier (load fanout does not see, a model
		// that lags), and always while the model rests on too few samples to overrule it.
		res.Utilization = est.Utilization
	}
	for i := range s.Workloads {
		v := &s.Workloads[i]
		if v.BaseKnown {
			res.FleetBase.Requests += v.BaseRequests
			res.FleetBase.RxBytes += v.BaseRxBytes
		} else {
			res.FleetBase.Requests += v.Now.Requests
			res.FleetBase.RxBytes += v.Now.RxBytes
		}
	}
	res.FleetRise = rise(s.Total, res.FleetBase)
	established := 0
	for i := range s.Workloads {
		v := &s.Workloads[i]
		f := Finding{ID: v.ID, Workload: v.Name, View: *v, CollapseETA: -1}
		// A workload that arrived while fanout watched and has no established baseline yet (new, or born into an
		// overload, when baselines pause) has all of its load above its baseline. Workloads already running when
		// the aggregator started are measured against what they learn.
		excess := v.Now
		if v.BaseKnown || !v.Arrived {
			excess = fleet.Counters{Requests: math.Max(0, v.Now.Requests-v.BaseRequests), RxBytes: math.Max(0, v.Now.RxBytes-v.BaseRxBytes)}
		}
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
			// Cold start: no headroom known. A surge threatens only when it lifts the whole fleet's load materially
			// above its baseline.
			f.Threat = res.FleetRise >= cfg.ColdFleetRise
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
	// A workload rolled out into a degrading API server must not make its first seconds its normal before the
	// overload is established (capacity still unknown, the overload rule not yet sustained): while the API server
	// itself reads busy, arrived workloads keep counting all their load as excess.
	res.PauseArrivedBaselines = d.measuredBusy() >= cfg.ArrivalLearnMax
	res.FleetWide = res.SurgingCount >= cfg.FleetWideMinWorkloads &&
		float64(res.SurgingCount) >= cfg.FleetWideFraction*float64(max(established, 1))
	if known && complete && res.Utilization >= cfg.OverloadAlert {
		res.Overloaded = true
		// Baselines pause on an overload the API server itself reports; the model alone (a capacity learned too low,
		// the API server calm) must not stop them, or every workload's normal load would turn into excess.
		res.PauseBaselines = est.UtilizationSource == "" || est.UtilizationSource == headroom.FromModel ||
			est.Utilization >= cfg.OverloadAlert
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
	res.PauseArrivedBaselines = res.PauseArrivedBaselines || res.PauseBaselines
}

// rise is how far now is above base: the larger of the request and byte ratios, minus one (0 when not above).
func rise(now, base fleet.Counters) float64 {
	r := 0.0
	if base.Requests > 0 {
		r = math.Max(r, now.Requests/base.Requests-1)
	}
	if base.RxBytes > 0 {
		r = math.Max(r, now.RxBytes/base.RxBytes-1)
	}
	return r
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
	// A workload whose pods fell well below their peak of the last minute is not rolling out: it shrinks, or some of
	// its pods are missing from the fleet's view, and projecting its full placement from there would read its own
	// pods as a rollout.
	peak := uint32(0)
	for i := range h.secs {
		if h.secs[i] > s.Second-historyLen {
			peak = max(peak, h.pods[i])
		}
	}
	f.RollingOut = v.Pods > 0 && pods < 0.98*float64(target) && growing && pods >= rolloutPeakShare*float64(peak)
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
	// A projection is the workload's only when its own growth, read on the model that projects it, adds
	// ProjectedMinGrowth: a workload a pod short for a second in an overload others cause projects nearly what the
	// model reads now. And only a workload whose growth carries the API server over is a culprit, not one rolling
	// out into an API server that others already overload: the projection must stand that far above what the API
	// server measures now.
	now := scale(v.Now, k)
	growth := f.Projected - d.Utilization(fleet.Counters{Requests: others.Requests + now.Requests, RxBytes: others.RxBytes + now.RxBytes})
	own := f.RollingOut && growth >= cfg.ProjectedMinGrowth
	f.ProjectedOver = own && f.Projected >= cfg.ProjectedTrip && f.Projected-util >= cfg.ProjectedMinGrowth
	f.ProjectedWarn = own && f.Projected >= cfg.ProjectedAlert
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
