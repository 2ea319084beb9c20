package fleet

import (
	"flag"
	"time"
)

// Config tunes windows and baselines.
type Config struct {
	// Warmup is how long a workload must run on a node before that node's rate counts as a baseline.
	Warmup time.Duration
	// NodeBaselineTau and FleetBaselineTau are the time constants of the slow moving averages.
	NodeBaselineTau  time.Duration
	FleetBaselineTau time.Duration
	// CostTau is the time constant of the per-pod cost average.
	CostTau time.Duration
	// JumpFactor and JumpMin*: a node's rate jumped when rate >= JumpFactor*baseline + JumpMin.
	JumpFactor      float64
	JumpMinRequests float64
	JumpMinRxBytes  float64
	// SurgeWindow: jumps that started within this long count as synchronized.
	SurgeWindow time.Duration
	// Forget drops per-node state of a workload not seen on that node for this long.
	Forget time.Duration
	// MaxWorkloads bounds the workload names held (0: no bound); when full, names idle past Forget are evicted and
	// new names beyond the bound count under Overflow.
	MaxWorkloads int
}

// DefaultConfig returns the defaults used by the aggregator and replay.
func DefaultConfig() Config {
	return Config{
		Warmup:           30 * time.Second,
		NodeBaselineTau:  120 * time.Second,
		FleetBaselineTau: 300 * time.Second,
		CostTau:          20 * time.Second,
		JumpFactor:       3,
		JumpMinRequests:  1,
		JumpMinRxBytes:   256 << 10,
		SurgeWindow:      30 * time.Second,
		Forget:           120 * time.Second,
		MaxWorkloads:     20_000,
	}
}

// RegisterFlags binds the config to flags under the "fleet." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Warmup, "fleet.warmup", c.Warmup, "time a workload runs on a node before its rate is a baseline")
	fs.DurationVar(&c.NodeBaselineTau, "fleet.node-baseline-tau", c.NodeBaselineTau, "time constant of per-node baselines")
	fs.DurationVar(&c.FleetBaselineTau, "fleet.fleet-baseline-tau", c.FleetBaselineTau, "time constant of fleet baselines")
	fs.DurationVar(&c.CostTau, "fleet.cost-tau", c.CostTau, "time constant of the per-pod cost average")
	fs.Float64Var(&c.JumpFactor, "fleet.jump-factor", c.JumpFactor, "a node's rate jumped when >= factor x baseline + minimum")
	fs.Float64Var(&c.JumpMinRequests, "fleet.jump-min-requests", c.JumpMinRequests, "minimum absolute jump, requests/s per node")
	fs.Float64Var(&c.JumpMinRxBytes, "fleet.jump-min-rx-bytes", c.JumpMinRxBytes, "minimum absolute jump, rx bytes/s per node")
	fs.DurationVar(&c.SurgeWindow, "fleet.surge-window", c.SurgeWindow, "jumps starting within this long count as synchronized")
	fs.DurationVar(&c.Forget, "fleet.forget", c.Forget, "forget a workload's node state after this long unseen")
	fs.IntVar(&c.MaxWorkloads, "fleet.max-workloads", c.MaxWorkloads, "workload names held at most; idle ones are evicted, the rest count as "+Overflow+" (0: unbounded)")
}
