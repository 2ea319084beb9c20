package detect

import (
	"flag"
	"time"
)

// Config holds the capacity model and detection thresholds.
type Config struct {
	// API server capacity flags: optional overrides of the learned headroom (capacity source "flag"); zero means
	// learn it from the API server's telemetry.
	CapacityRequestsPerS float64
	CapacityRxBytesPerS  float64
	// ColdFleetRise: with no headroom estimate at all, a synchronized surge threatens only when the fleet's load is at
	// least this far above its baseline (0.5 = +50%).
	ColdFleetRise float64

	SurgeMinNodes    int
	SurgeMinFraction float64
	// A surge threatens the API server when the workload's load above its baseline is at least ThreatShare of
	// capacity, or total utilization is at least ThreatUtilization.
	ThreatShare       float64
	ThreatUtilization float64

	HotFactor   float64
	HotMinShare float64

	ProjectedAlert float64
	ProjectedTrip  float64
	// ProjectedMinGrowth: the workload's own growth to full placement must add at least this share of capacity.
	ProjectedMinGrowth    float64
	ProjectionMinPods     int
	ProjectionMinRequests float64
	// ProjectionMinAge: how long a workload must have been seen before it is projected.
	ProjectionMinAge time.Duration
	// GrowthWindow: a workload whose pod count reached a new maximum within this long is still rolling out.
	GrowthWindow time.Duration
	// SizeScaledBytes: responses at least this large per request are taken to grow with the fleet's pod count.
	SizeScaledBytes float64

	FleetWideMinWorkloads int
	FleetWideFraction     float64

	OverloadAlert float64
	// ModelMinConfidence: below this confidence a learned capacity does not overrule the utilization the API server
	// shows now (a fit from one or two samples can be far off).
	ModelMinConfidence float64
	// TopShare: a workload is an overload contributor when its load above baseline is at least this share.
	TopShare float64
	// ArrivalLearnMax: workloads that arrived while fanout watched learn no baseline while the API server's own
	// reading (seats, latency, or the nodes' latency) is at least this busy.
	ArrivalLearnMax float64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		ColdFleetRise:         0.5,
		SurgeMinNodes:         3,
		SurgeMinFraction:      0.2,
		ThreatShare:           0.2,
		ThreatUtilization:     0.8,
		HotFactor:             4,
		HotMinShare:           0.03,
		ProjectedAlert:        0.7,
		ProjectedTrip:         1.0,
		ProjectedMinGrowth:    0.1,
		ProjectionMinPods:     3,
		ProjectionMinRequests: 20,
		ProjectionMinAge:      10 * time.Second,
		GrowthWindow:          120 * time.Second,
		SizeScaledBytes:       4 << 20,
		FleetWideMinWorkloads: 3,
		ArrivalLearnMax:       0.7,
		FleetWideFraction:     0.5,
		OverloadAlert:         0.9,
		ModelMinConfidence:    0.2,
		TopShare:              0.1,
	}
}

// RegisterFlags binds the config to flags under the "detect." and "apiserver." prefixes.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.CapacityRequestsPerS, "apiserver.capacity-requests-per-s", c.CapacityRequestsPerS, "override: API server capacity in requests/s (0 = learn the headroom from the API server's metrics)")
	fs.Float64Var(&c.CapacityRxBytesPerS, "apiserver.capacity-rx-bytes-per-s", c.CapacityRxBytesPerS, "override: API server capacity in response bytes/s (0 = learn the headroom)")
	fs.Float64Var(&c.ColdFleetRise, "detect.cold-fleet-rise", c.ColdFleetRise, "with no headroom estimate yet, a surge trips only when the fleet's load rose this far above its baseline (0.5 = +50%)")
	fs.IntVar(&c.SurgeMinNodes, "detect.surge-min-nodes", c.SurgeMinNodes, "minimum nodes jumping together for a synchronized surge")
	fs.Float64Var(&c.SurgeMinFraction, "detect.surge-min-fraction", c.SurgeMinFraction, "minimum fraction of a workload's nodes jumping together")
	fs.Float64Var(&c.ThreatShare, "detect.threat-share", c.ThreatShare, "load above baseline, as a share of capacity, that makes a surge a threat")
	fs.Float64Var(&c.ThreatUtilization, "detect.threat-utilization", c.ThreatUtilization, "total utilization that makes any surge a threat")
	fs.Float64Var(&c.HotFactor, "detect.hot-factor", c.HotFactor, "fleet rate vs baseline that marks a hot workload (alert)")
	fs.Float64Var(&c.HotMinShare, "detect.hot-min-share", c.HotMinShare, "minimum share of capacity above baseline for a hot-workload alert")
	fs.Float64Var(&c.ProjectedAlert, "detect.projected-alert", c.ProjectedAlert, "projected utilization at full placement that raises an alert")
	fs.Float64Var(&c.ProjectedTrip, "detect.projected-trip", c.ProjectedTrip, "projected utilization at full placement that trips")
	fs.Float64Var(&c.ProjectedMinGrowth, "detect.projected-min-growth", c.ProjectedMinGrowth, "share of capacity the workload's own growth to full placement must add to alert or trip on projection")
	fs.IntVar(&c.ProjectionMinPods, "detect.projection-min-pods", c.ProjectionMinPods, "pods needed before projecting a rollout")
	fs.Float64Var(&c.ProjectionMinRequests, "detect.projection-min-requests", c.ProjectionMinRequests, "observed requests needed before projecting a rollout")
	fs.DurationVar(&c.ProjectionMinAge, "detect.projection-min-age", c.ProjectionMinAge, "how long a workload must have been seen before it is projected")
	fs.DurationVar(&c.GrowthWindow, "detect.growth-window", c.GrowthWindow, "a workload that grew within this long is still rolling out")
	fs.Float64Var(&c.SizeScaledBytes, "detect.size-scaled-bytes", c.SizeScaledBytes, "bytes per request from which responses are taken to grow with the fleet")
	fs.IntVar(&c.FleetWideMinWorkloads, "detect.fleet-wide-min-workloads", c.FleetWideMinWorkloads, "workloads surging together that mark a fleet-wide (restart) surge")
	fs.Float64Var(&c.FleetWideFraction, "detect.fleet-wide-fraction", c.FleetWideFraction, "fraction of workloads surging together that marks a fleet-wide surge")
	fs.Float64Var(&c.ArrivalLearnMax, "detect.arrival-learn-max", c.ArrivalLearnMax, "a workload that arrived while fanout watched learns no baseline while the API server reads at least this busy")
	fs.Float64Var(&c.OverloadAlert, "detect.overload-alert", c.OverloadAlert, "total utilization that raises overload alerts with attribution")
	fs.Float64Var(&c.ModelMinConfidence, "detect.model-min-confidence", c.ModelMinConfidence, "below this confidence a learned capacity does not overrule the API server's measured utilization")
	fs.Float64Var(&c.TopShare, "detect.top-share", c.TopShare, "share of capacity above baseline that makes a workload an overload contributor")
}
