package uplink

import (
	"context"
	"log/slog"
	"sync"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/collector/agent"
	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/report"
)

// Enforcer is the part of the kill switch the uplink drives.
type Enforcer interface {
	Apply(enforce.Directive) error
	Blocked() []enforce.BlockedWorkload
}

// Uplink forwards snapshots as reports and directives to the enforcer.
type Uplink struct {
	enf     Enforcer // nil: counting-only agent (directives are logged, not enforced)
	version string
	log     *slog.Logger

	mu     sync.Mutex
	epochs map[string]uint64 // workload -> epoch of the last block directive applied
}

// New returns an Uplink; enf may be nil.
func New(enf Enforcer, version string, logger *slog.Logger) *Uplink {
	return &Uplink{enf: enf, version: version, log: logger.With("component", "uplink"), epochs: map[string]uint64{}}
}

// HandleDirective is the report client's directive handler: it maps a merged directive onto the enforcer's.
// A refused directive (protected workload, bad ramp) is logged by the enforcer and here; nothing else happens.
func (u *Uplink) HandleDirective(d report.Directive) {
	ed := Directive(d)
	if u.enf == nil {
		u.log.Warn("directive received but enforcement is off", "action", ed.Action, "workload", ed.Workload)
		return
	}
	if err := u.enf.Apply(ed); err != nil {
		u.log.Warn("directive not applied", "action", ed.Action, "workload", ed.Workload, "err", err)
		return
	}
	u.mu.Lock()
	if d.Block {
		u.epochs[d.Workload] = d.Epoch
	} else {
		delete(u.epochs, d.Workload)
	}
	u.mu.Unlock()
}

// Directive maps a merged wire directive onto an enforcer directive.
func Directive(d report.Directive) enforce.Directive {
	if d.Block {
		return enforce.Directive{Action: enforce.ActionBlock, Workload: d.Workload, TTL: d.TTL, Reason: d.Reason}
	}
	return enforce.Directive{
		Action: enforce.ActionRelease, Workload: d.Workload, Reason: d.Reason,
		Ramp: enforce.Ramp{Duration: d.RampDuration, Steps: int(d.RampSteps), Jitter: d.RampJitter},
	}
}

// Report converts a snapshot into a wire report carrying the node's blocked set and health.
func (u *Uplink) Report(s agent.Snapshot, health *api.AgentHealth) *api.NodeReport {
	r := &api.NodeReport{
		Node:      s.Node,
		Timestamp: timestamppb.New(s.Time),
		Interval:  durationpb.New(s.Interval),
		Pods:      make([]*api.PodDelta, 0, len(s.Pods)),
		Workloads: make([]*api.WorkloadDelta, 0, len(s.Workloads)),
		Health:    health,
	}
	for _, p := range s.Pods {
		r.Pods = append(r.Pods, &api.PodDelta{Uid: p.UID, Namespace: p.Namespace, Name: p.Pod, Workload: p.Workload,
			Delta: counters(p.Counts)})
	}
	for _, w := range s.Workloads {
		r.Workloads = append(r.Workloads, &api.WorkloadDelta{Workload: w.Workload, Pods: uint32(w.Pods),
			Delta: counters(w.Counts), ResponseLatency: w.Latency.Proto(), Outcomes: w.Outcomes.Proto()})
	}
	if u.enf != nil {
		u.mu.Lock()
		for _, b := range u.enf.Blocked() {
			r.Blocked = append(r.Blocked, &api.BlockedEntry{Workload: b.Workload, Epoch: u.epochs[b.Workload]})
		}
		u.mu.Unlock()
	}
	if r.Health != nil && r.Health.Version == "" {
		r.Health.Version = u.version
	}
	return r
}

// Forward submits a report for every snapshot until ctx ends. health is called once per snapshot.
func (u *Uplink) Forward(ctx context.Context, snaps <-chan agent.Snapshot, submit func(*api.NodeReport), health func() *api.AgentHealth) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-snaps:
			submit(u.Report(s, health()))
		}
	}
}

func counters(c agent.Counts) *api.Counters {
	return &api.Counters{Connects: c.Connects, Requests: c.Requests, TxBytes: c.TxBytes, RxBytes: c.RxBytes}
}
