package killswitch

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/api/protect"
	"github.com/fanoutdev/fanout/api/ramp"
)

// Config is the kill-switch policy.
type Config struct {
	DryRun    bool
	Protected []string
	MaxTrips  int

	SurgeSustain     time.Duration
	ProjectedSustain time.Duration
	OverloadSustain  time.Duration
	// FleetWideHold: after a fleet-wide surge, surges trip nothing for this long.
	FleetWideHold time.Duration

	MinHold      time.Duration
	AlertClear   time.Duration
	ReleasedHold time.Duration
	// ReleaseBelow: a projected/overload trip is released when utilization with the workload back would stay below.
	ReleaseBelow float64

	BlockTTL     time.Duration
	RampDuration time.Duration
	RampSteps    uint
	RampJitter   time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxTrips:         3,
		SurgeSustain:     3 * time.Second,
		ProjectedSustain: 5 * time.Second,
		OverloadSustain:  30 * time.Second,
		FleetWideHold:    60 * time.Second,
		MinHold:          5 * time.Minute,
		AlertClear:       30 * time.Second,
		ReleasedHold:     60 * time.Second,
		ReleaseBelow:     0.8,
		BlockTTL:         10 * time.Minute,
		RampDuration:     2 * time.Minute,
		RampSteps:        4,
		RampJitter:       5 * time.Second,
		Protected:        append([]string(nil), protect.Defaults...),
	}
}

// Validate checks the protected patterns and the release ramp.
func (c Config) Validate() error {
	if _, err := protect.Compile(c.Protected); err != nil {
		return fmt.Errorf("--killswitch.protected: %w", err)
	}
	if err := (ramp.Schedule{Duration: c.RampDuration, Steps: c.RampSteps, Jitter: c.RampJitter}).Validate(); err != nil {
		return fmt.Errorf("--killswitch.ramp-*: %w", err)
	}
	if c.MaxTrips < 0 {
		return fmt.Errorf("--killswitch.max-trips %d < 0", c.MaxTrips)
	}
	return nil
}

// listFlag is a comma-separated, repeatable list of protected patterns: the first use replaces the defaults, each
// pattern is checked as it is given.
type listFlag struct {
	p   *[]string
	set *bool
}

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(s string) error {
	if !*l.set {
		*l.p, *l.set = nil, true
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			if err := protect.Validate(v); err != nil {
				return err
			}
			*l.p = append(*l.p, v)
		}
	}
	return nil
}

// RegisterFlags binds the config to flags under the "killswitch." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.DryRun, "killswitch.dry-run", c.DryRun, "decide and audit, but send no block directives")
	fs.Var(listFlag{p: &c.Protected, set: new(bool)}, "killswitch.protected", "workloads never blocked nor remediated: Kind/namespace/name glob patterns "+
		"(api/protect: * within a segment, Kind case-insensitive), comma separated, repeatable; the first use replaces the defaults")
	fs.IntVar(&c.MaxTrips, "killswitch.max-trips", c.MaxTrips, "maximum workloads tripped at once")
	fs.DurationVar(&c.SurgeSustain, "killswitch.surge-sustain", c.SurgeSustain, "how long a threatening synchronized surge must last to trip")
	fs.DurationVar(&c.ProjectedSustain, "killswitch.projected-sustain", c.ProjectedSustain, "how long a projected overload must last to trip")
	fs.DurationVar(&c.OverloadSustain, "killswitch.overload-sustain", c.OverloadSustain, "how long total overload must last to trip its top contributor")
	fs.DurationVar(&c.FleetWideHold, "killswitch.fleet-wide-hold", c.FleetWideHold, "after a fleet-wide surge, surges trip nothing for this long")
	fs.DurationVar(&c.MinHold, "killswitch.min-hold", c.MinHold, "minimum time a trip holds before automatic release")
	fs.DurationVar(&c.AlertClear, "killswitch.alert-clear", c.AlertClear, "quiet time before an alert returns to observe")
	fs.DurationVar(&c.ReleasedHold, "killswitch.released-hold", c.ReleasedHold, "time in released before observe")
	fs.Float64Var(&c.ReleaseBelow, "killswitch.release-below", c.ReleaseBelow, "projected utilization below which a capacity trip is released")
	fs.DurationVar(&c.BlockTTL, "killswitch.block-ttl", c.BlockTTL, "block directive TTL (agents unblock if not refreshed)")
	fs.DurationVar(&c.RampDuration, "killswitch.ramp-duration", c.RampDuration, "release ramp duration")
	fs.UintVar(&c.RampSteps, "killswitch.ramp-steps", c.RampSteps, "release ramp steps")
	fs.DurationVar(&c.RampJitter, "killswitch.ramp-jitter", c.RampJitter, "release ramp per-node jitter")
}
