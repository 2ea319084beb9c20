package metrics

import (
	"flag"
	"fmt"
)

// DefaultTopWorkloads is the default bound on the workloads exported under their own names.
const DefaultTopWorkloads = 200

// Config bounds the per-workload series the collector exports.
type Config struct {
	// TopWorkloads is how many workloads a scrape exports under their own name at most; the rest are folded into
	// workload="other". Workloads in any kill-switch state but observe, or with a held release, are always exported
	// and count against the bound first. 0 exports every workload held (up to fleet.max-workloads of them).
	TopWorkloads int
}

// DefaultConfig returns the aggregator's defaults.
func DefaultConfig() Config { return Config{TopWorkloads: DefaultTopWorkloads} }

// RegisterFlags binds the config to flags under the "metrics." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.TopWorkloads, "metrics.top-workloads", c.TopWorkloads,
		`workloads exported under their own name on /metrics at most (the busiest by requests, response bytes and connects; `+
			`alerted, tripped, releasing and released ones always); the rest are summed as workload="other" (0: every workload)`)
}

// Validate checks the bound.
func (c Config) Validate() error {
	if c.TopWorkloads < 0 {
		return fmt.Errorf("--metrics.top-workloads %d: want 0 (every workload) or more", c.TopWorkloads)
	}
	return nil
}
