package enforce

import (
	"errors"
	"time"

	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

// WorkloadResolver names the workload of a pod on this node (collector/identity satisfies it through WorkloadFunc).
type WorkloadResolver interface {
	WorkloadOf(podUID string) (workload string, ok bool)
}

// WorkloadFunc adapts a function to WorkloadResolver.
type WorkloadFunc func(podUID string) (string, bool)

// WorkloadOf implements WorkloadResolver.
func (f WorkloadFunc) WorkloadOf(podUID string) (string, bool) { return f(podUID) }

// PriorityResolver is optionally implemented by the WorkloadResolver: pods whose priority class is
// system-node-critical or system-cluster-critical are never blocked.
type PriorityResolver interface {
	PriorityClassOf(podUID string) (class string, ok bool)
}

// Config configures the Enforcer (flags: --bpf.pin-dir, --enforce.*).
type Config struct {
	// PinDir is the instance pin dir (bpffs; mounted at /sys/fs/bpf if missing).
	PinDir string
	// PodsCgroup is the node's pods cgroup (absolute path): the enforce programs attach there and the watcher
	// watches its tree.
	PodsCgroup string
	// DefaultTTL applies to block directives without a TTL; MaxTTL caps every TTL.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// Protected lists workload patterns that are never blocked (path.Match over `Kind/namespace/name`); nil means
	// DefaultProtected. Pods with a system-*-critical priority class and the agent's own pod are always protected.
	Protected []string
	// SweepInterval is how often TTLs, release ramps and the block list are reconciled (default 250ms).
	SweepInterval time.Duration
	// Node is this node's name: its place in every fleet-wide release ramp (api/ramp).
	Node string
	// DefaultRamp is the ramp of a release that names none (a workload that vanished from the directive sets);
	// zero = 2m in 4 steps with 5s jitter, the aggregator's defaults.
	DefaultRamp Ramp
}

func (c *Config) defaults() error {
	if c.PinDir == "" || c.PodsCgroup == "" {
		return errors.New("enforce config: pin dir and pods cgroup are required")
	}
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = 10 * time.Minute
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = time.Hour
	}
	if c.Protected == nil {
		c.Protected = DefaultProtected
	}
	if c.DefaultRamp == (Ramp{}) {
		c.DefaultRamp = Ramp{Duration: 2 * time.Minute, Steps: 4, Jitter: 5 * time.Second}
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 250 * time.Millisecond
	}
	return nil
}

// Deps are the Enforcer's collaborators.
type Deps struct {
	Workloads WorkloadResolver
	// Destinations returns the API-server endpoints whose connections are torn down on block; nil reads the pinned
	// api_endpoints map of the instance.
	Destinations func() ([]sockdestroy.Destination, error)
}
