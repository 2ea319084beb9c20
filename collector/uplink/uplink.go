package uplink

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

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

	mu      sync.Mutex
	refused map[string]refusal // workload -> why this node does not enforce its block (closed loop)
	now     func() time.Time
}

type refusal struct {
	epoch  uint64
	reason string
	at     time.Time
}

// refusalTTL is how long a refusal is reported after the last directive that was refused.
const refusalTTL = time.Minute

// New returns an Uplink; enf may be nil.
func New(enf Enforcer, version string, logger *slog.Logger) *Uplink {
	return &Uplink{enf: enf, version: version, log: logger.With("component", "uplink"), refused: map[string]refusal{},
		now: time.Now}
}

// HandleDirective is the report client's directive handler: it maps a merged directive onto the enforcer's.
// A refused directive (protected workload, bad ramp) is logged by the enforcer and here; nothing else happens.
func (u *Uplink) HandleDirective(d report.Directive) {
	ed := Directive(d)
	if u.enf == nil {
		u.log.Warn("directive received but enforcement is off", "action", ed.Action, "workload", ed.Workload)
		return
	}
	err := u.enf.Apply(ed)
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case err == nil:
		delete(u.refused, d.Workload)
	case errors.Is(err, enforce.ErrStale):
		u.log.Debug("stale directive ignored", "action", ed.Action, "workload", ed.Workload, "epoch", d.Epoch)
	case d.Block:
		reason := "error"
		if errors.Is(err, enforce.ErrProtected) {
			reason = enforce.ReasonProtected
		}
		u.refused[d.Workload] = refusal{epoch: d.Epoch, reason: reason, at: u.now()}
		u.log.Warn("block not enforced", "workload", ed.Workload, "reason", reason, "err", err)
	default:
		u.log.Warn("directive not applied", "action", ed.Action, "workload", ed.Workload, "err", err)
	}
}

// Directive maps a merged wire directive onto an enforcer directive.
func Directive(d report.Directive) enforce.Directive {
	if d.Block {
		return enforce.Directive{Action: enforce.ActionBlock, Workload: d.Workload, TTL: d.TTL, Reason: d.Reason, Epoch: d.Epoch}
	}
	return enforce.Directive{
		Action: enforce.ActionRelease, Workload: d.Workload, Reason: d.Reason, Epoch: d.Epoch, Issued: d.Issued,
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
		// A workload with pods lifted by break-glass on this node (`fanoutctl node unblock`) is reported with
		// break_glass set: the node does not fully enforce it, so the aggregator counts it as not enforcing (a
		// laggard) and does not adopt the trip from this report.
		for _, b := range u.enf.Blocked() {
			r.Blocked = append(r.Blocked, &api.BlockedEntry{Workload: b.Workload, Epoch: b.Epoch, Releasing: b.Releasing,
				BreakGlass: b.Exempt > 0})
		}
		u.mu.Lock()
		now := u.now()
		for w, rf := range u.refused {
			if now.Sub(rf.at) > refusalTTL {
				delete(u.refused, w)
				continue
			}
			r.Refused = append(r.Refused, &api.Refusal{Workload: w, Epoch: rf.epoch, Reason: rf.reason})
		}
		u.mu.Unlock()
		sort.Slice(r.Refused, func(i, j int) bool { return r.Refused[i].Workload < r.Refused[j].Workload })
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
