package incident

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
)

// Config of one replay.
type Config struct {
	// Nodes is the size of the simulated fleet (one agent per node when guarded).
	Nodes int
	// SeedPods is how many pods make cluster-wide LISTs expensive (DESIGN.md: 2000 pods = 5.5 MB protobuf LIST).
	SeedPods int
	// SystemRate is each system pod's GETs per second.
	SystemRate float64
	// TelemetryWorkers is the number of concurrent LIST loops in each telemetry pod.
	TelemetryWorkers int
	// KubectlBin, when set, makes the telemetry pods run a real, unmodified kubectl instead of podload's LISTs:
	// KubectlLoops loops per pod of `kubectl get pods -A -o json` (harness.EnsureKubectl builds it).
	KubectlBin   string
	KubectlLoops int
	// ResourceVersion of the telemetry LISTs: "" (quorum read from etcd, the expensive kind) or "0" (watch cache).
	ResourceVersion string
	// Baseline is how long the healthy fleet runs before the telemetry rollout begins.
	Baseline time.Duration
	// Rollout spreads the telemetry pods' starts over this long.
	Rollout time.Duration
	// Incident is how long the telemetry runs after its rollout finished.
	Incident time.Duration
	// Recovery: the telemetry pods stay (a real DaemonSet is not rolled back in seconds); the run goes on this long
	// after Incident so a guard's release and any recovery herd are visible.
	Recovery time.Duration
	// Rollback: at IncidentEnd the operator rolls the telemetry DaemonSet back to a cheap config: on each node the
	// heavy pod is stopped and deleted (object and cgroup) and a new pod doing light GETs (LightRate/s) replaces it.
	// New pods of a blocked workload are blocked by fanout until the workload is released.
	Rollback bool
	// LightRate is each rolled-back telemetry pod's GETs per second (default 5).
	LightRate float64
	// ReleaseAfter: this long after the rollback the operator releases the telemetry workload by hand through the
	// guard, when the guard is a Releaser and has tripped the workload. 0: no manual release.
	ReleaseAfter time.Duration
	// ProbeInterval between the unrelated client's GETs.
	ProbeInterval time.Duration
	// Guard protects the API server; nil replays the incident unprotected.
	Guard Guard
	// Mode names the run in summaries and reports ("armed", "dry-run"); default "guarded" or "unprotected".
	Mode string
	// WorkDir for logs, kubeconfigs and the podload binary (a temp dir when empty; kept when set).
	WorkDir string
	// Live receives a human-readable line per second (nil: none).
	Live   io.Writer
	Logger *slog.Logger
}

// Defaults fills unset fields with values that suit a 2-core machine (Rollout and Recovery stay as set: 0 is valid).
func (c *Config) Defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Nodes == 0 {
		c.Nodes = 4
	}
	if c.SeedPods == 0 {
		c.SeedPods = 2000
	}
	if c.SystemRate == 0 {
		c.SystemRate = 2
	}
	if c.TelemetryWorkers == 0 {
		c.TelemetryWorkers = 8
	}
	if c.KubectlLoops == 0 {
		c.KubectlLoops = 4
	}
	if c.LightRate == 0 {
		c.LightRate = 5
	}
	def(&c.Baseline, 20*time.Second)
	def(&c.Incident, 40*time.Second) // Rollout and Recovery may be 0: they keep what the caller set
	def(&c.ProbeInterval, 100*time.Millisecond)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate bounds the run (every loop in the e2e is bounded in time).
func (c *Config) Validate() error {
	switch {
	case c.Nodes < 1 || c.Nodes > 500:
		return fmt.Errorf("nodes %d out of range [1, 500]", c.Nodes)
	case c.SeedPods < 0 || c.SeedPods > 20000:
		return fmt.Errorf("seed pods %d out of range [0, 20000]", c.SeedPods)
	case c.TelemetryWorkers < 1 || c.TelemetryWorkers > 64:
		return fmt.Errorf("telemetry workers %d out of range [1, 64]", c.TelemetryWorkers)
	case c.KubectlLoops < 1 || c.KubectlLoops > 32:
		return fmt.Errorf("kubectl loops %d out of range [1, 32]", c.KubectlLoops)
	case c.SystemRate <= 0 || c.SystemRate > 100:
		return fmt.Errorf("system rate %g out of range (0, 100]", c.SystemRate)
	case c.LightRate <= 0 || c.LightRate > 100:
		return fmt.Errorf("light rate %g out of range (0, 100]", c.LightRate)
	case c.ReleaseAfter < 0 || c.ReleaseAfter > 0 && (!c.Rollback || c.ReleaseAfter >= c.Recovery):
		return errors.New("release-after needs a rollback and must fall inside the recovery window")
	case c.ResourceVersion != "" && c.ResourceVersion != "0":
		return errors.New(`resource version must be "" or "0"`)
	case c.Baseline < time.Second || c.Rollout < 0 || c.Incident < time.Second || c.Recovery < 0:
		return errors.New("baseline and incident must be at least 1s; rollout and recovery not negative")
	case c.Baseline+c.Rollout+c.Incident+c.Recovery > 30*time.Minute:
		return errors.New("run longer than 30 minutes")
	}
	return nil
}

// Guard is fanout wired into the run: agents on the simulated nodes and an aggregator.
type Guard interface {
	// Start is called once the control plane and the fleet's cgroups exist, before any pod starts: attach an agent
	// per node (Env.Fleet.Nodes[i].Dir), start the aggregator. It must return once the guard is ready.
	Start(ctx context.Context, env *Env) error
	// Events returns every decision or enforcement event so far (polled each second for the live account).
	Events() []Event
	// Close stops everything Start started (by PID) and is called once, after the pods are stopped.
	Close() error
}

// Metered is a Guard that records its own metrics over time (the aggregator's headroom estimate and the API server
// utilization it measured); the report plots them.
type Metered interface {
	Metrics() []MetricSeries
}

// MetricSeries is one metric (name with its labels, as exposed) sampled over the run.
type MetricSeries struct {
	Name   string
	Points []MetricPoint
}

// MetricPoint is one sample of a MetricSeries.
type MetricPoint struct {
	At    time.Time
	Value float64
}

// Releaser is a Guard through which the operator releases a tripped workload by hand (fanoutctl release). The
// release ramp is the guard's own configuration. It returns what the CLI printed.
type Releaser interface {
	Release(ctx context.Context, workload, reason string) (string, error)
}

// Env is what a Guard gets to work with.
type Env struct {
	ControlPlane *harness.ControlPlane
	Fleet        *fleet.Fleet
	// AgentUser is a normal token user with cluster-wide read on pods (agents' node-scoped informers use it);
	// AgentKubeconfig is its kubeconfig file.
	AgentUser, AgentKubeconfig string
	// AggregatorUser is a normal token user that RBAC allows to GET the API server's /metrics and to list and watch
	// the workload kinds (placement); AggregatorKubeconfig its kubeconfig, AggregatorTokenFile its bearer token and
	// CAFile the API server's CA (PEM), for flags that take files.
	AggregatorUser, AggregatorKubeconfig, AggregatorTokenFile, CAFile string
	WorkDir                                                           string
	Logger                                                            *slog.Logger
}

// Event is one thing fanout did, as the guard reports it.
type Event struct {
	At time.Time
	// Kind: alert | trip | enforced (a node applied a block) | release | released.
	Kind     string
	Workload string // Kind/namespace/name
	Node     string // for enforced events
	Detail   string
}
