package enforce

import (
	"flag"
	"strings"

	"github.com/fanoutdev/fanout/api/protect"
)

// RegisterFlags binds the enforce settings to --enforce.* flags (PinDir and PodsCgroup come from the agent's
// --bpf.pin-dir and --cgroup.root).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.DefaultTTL, "enforce.default-ttl", 0, "TTL of a block directive without one (default 10m)")
	fs.DurationVar(&c.MaxTTL, "enforce.max-ttl", 0, "cap on any block TTL (default 1h)")
	fs.DurationVar(&c.SweepInterval, "enforce.sweep-interval", 0,
		"how often TTLs, release ramps and the block list are reconciled (default 250ms)")
	fs.DurationVar(&c.DefaultRamp.Duration, "enforce.release-ramp", 0,
		"ramp of a release that names none (a workload that vanished from the directive sets; default 2m)")
	fs.Func("enforce.protected", "comma-separated workload patterns never blocked (api/protect globs over Kind/namespace/name; "+
		"replaces the defaults: "+strings.Join(DefaultProtected, ",")+")", func(s string) error {
		c.Protected = nil
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				if err := protect.Validate(p); err != nil {
					return err
				}
				c.Protected = append(c.Protected, p)
			}
		}
		return nil
	})
}
