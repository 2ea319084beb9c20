package killswitch

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/aggregator/detect"
	"github.com/fanoutdev/fanout/api/protect"
)

type cause int

const (
	causeNone cause = iota
	causeSurge
	causeProjected
	causeOverload
	causeManual
	causeAdopted // restored from the agents' reported blocks; released like a surge trip
)

type entry struct {
	state             State
	since             int64
	epoch             uint64
	cause             cause
	reason            string
	quietFor          int64
	surgeFor, projFor int64
	// excessAtTrip is the workload's load above baseline when it tripped (overload trips).
	excessAtTrip float64
	manualUntil  int64
	ev           Evidence
	// refusedUntil: the fleet refused the last trip; alert, do not trip again before this second.
	refusedUntil int64
	held         string // why a trip past MinHold is not released (release_policy.go)
}

// Switch is the kill switch for every workload. Not safe for concurrent use.
type Switch struct {
	cfg          Config
	protected    *protect.Set
	extra        map[string]bool // exact names protected by Protect (scenario files)
	entries      map[string]*entry
	overloadFor  int64
	fleetWideTil int64
	version      uint64
}

// New returns a switch. Check the config with Config.Validate first: with a malformed protected pattern the switch
// fails safe and treats every workload as protected (it alerts, never trips).
func New(cfg Config) *Switch {
	p, err := protect.Compile(cfg.Protected)
	if err != nil {
		p = protect.MustCompile([]string{"*/*/*"})
	}
	return &Switch{cfg: cfg, protected: p, extra: map[string]bool{}, entries: map[string]*entry{}}
}

// Protect marks one workload (an exact name) as never blocked.
func (s *Switch) Protect(workload string) { s.extra[workload] = true }

// Protected reports whether a workload is protected: it matches a --killswitch.protected pattern (api/protect glob
// semantics, the same code the agents run) or was protected by name.
func (s *Switch) Protected(workload string) bool {
	return s.extra[workload] || s.protected.Match(workload)
}

// Config returns the policy.
func (s *Switch) Config() Config { return s.cfg }

// Version increases whenever the directive set changes.
func (s *Switch) Version() uint64 { return s.version }

func (s *Switch) entry(w string) *entry {
	e := s.entries[w]
	if e == nil {
		e = &entry{}
		s.entries[w] = e
	}
	return e
}

// StateOf returns a workload's state and the reason it is in it.
func (s *Switch) StateOf(w string) (State, string, uint64) {
	if e := s.entries[w]; e != nil {
		return e.state, e.reason, e.epoch
	}
	return Observe, "", 0
}

// Tripped returns the workloads currently tripped (blocked or ramping out of a block).
func (s *Switch) Tripped() []string {
	var out []string
	for w, e := range s.entries {
		if e.state == Trip || e.state == Releasing {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

// Blocking lists the workloads in state trip: their pods are all blocked, so their traffic says nothing about their
// cost and the fleet model must not learn from it. A releasing workload's re-admitted pods are its own again.
func (s *Switch) Blocking() []string {
	var out []string
	for w, e := range s.entries {
		if e.state == Trip {
			out = append(out, w)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Switch) activeTrips() int {
	n := 0
	for _, e := range s.entries {
		if e.state == Trip {
			n++
		}
	}
	return n
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

func evidence(rule string, f *detect.Finding, r *detect.Result) Evidence {
	v := &f.View
	ev := Evidence{
		Rule: rule, Utilization: round(r.Utilization), RequestsPerS: round(v.Now.Requests), BaselineRequests: round(v.BaseRequests),
		RxBytesPerS: round(v.Now.RxBytes), BaselineRxBytes: round(v.BaseRxBytes), SyncNodes: v.SyncNodes,
		EstablishedNodes: v.EstablishedNodes, Pods: v.Pods, TargetPods: f.TargetPods,
		PerPodRequests: round(v.CostRequests), PerPodRxBytes: round(v.CostRxBytes), ProjectedRatio: round(f.Projected),
		ExcessShare: round(f.ExcessShare), SurgingWorkloads: r.SurgingCount,
	}
	if f.CollapseETA >= 0 {
		ev.CollapseETASeconds = round(f.CollapseETA)
	}
	if rule == "overload" {
		ev.Contributors = append([]string(nil), r.Contributors...)
	}
	return ev
}

func round(x float64) float64 {
	if x > 1e6 || x < -1e6 {
		return float64(int64(x))
	}
	return float64(int64(x*1000+sign(x)*0.5)) / 1000
}

func sign(x float64) float64 {
	if x < 0 {
		return -1
	}
	return 1
}

// Step applies one closed second's findings and returns the decisions taken, in a deterministic order.
func (s *Switch) Step(r *detect.Result) []Decision {
	cfg := s.cfg
	sec := r.Second
	var out []Decision
	if r.FleetWide {
		s.fleetWideTil = sec + secs(cfg.FleetWideHold)
	}
	if r.Overloaded && r.Utilization >= 1 {
		s.overloadFor++
	} else {
		s.overloadFor = 0
	}
	suppressed := sec <= s.fleetWideTil
	seen := make(map[string]bool, len(r.Findings))
	// The top unprotected overload contributor is the only overload trip candidate.
	topOverload := ""
	if s.overloadFor >= secs(cfg.OverloadSustain) {
		for _, w := range r.Contributors {
			// Protected workloads and traffic no pod can be blocked for (host processes, cgroups not yet attributed)
			// are passed over: the next contributor is the one to act on.
			if !s.Protected(w) && unenforceable(w) == "" {
				// A fleet-wide surge (every workload relisting after an API server restart) holds overload trips,
				// unless one workload carries most of the rise: a saturated API server makes every client's calls
				// bunch up together, which reads as a fleet-wide surge while one rollout is the cause.
				if e := s.entries[w]; (e == nil || (e.state != Trip && e.state != Releasing)) && (!suppressed || dominant(r, w)) {
					topOverload = w
				}
				break
			}
		}
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		seen[f.Workload] = true
		if d, ok := s.stepOne(f, r, suppressed, topOverload); ok {
			out = append(out, d...)
		}
	}
	// Workloads without findings this second (no reports) still age.
	names := make([]string, 0, len(s.entries))
	for w := range s.entries {
		if !seen[w] {
			names = append(names, w)
		}
	}
	sort.Strings(names)
	for _, w := range names {
		empty := detect.Finding{Workload: w, CollapseETA: -1}
		if d, ok := s.stepOne(&empty, r, suppressed, ""); ok {
			out = append(out, d...)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].Workload < out[b].Workload })
	return out
}

func (s *Switch) stepOne(f *detect.Finding, r *detect.Result, suppressed bool, topOverload string) ([]Decision, bool) {
	cfg := s.cfg
	sec := r.Second
	w := f.Workload
	e := s.entries[w]
	if e == nil {
		if !f.Surge && !f.Hot && !f.ProjectedWarn && !f.Contributor {
			return nil, false
		}
		e = s.entry(w)
	}
	if f.Surge && f.Threat {
		e.surgeFor++
	} else {
		e.surgeFor = 0
	}
	if f.ProjectedOver {
		e.projFor++
	} else {
		e.projFor = 0
	}
	// What would trip now, and why.
	var c cause
	var ev Evidence
	var reason string
	switch {
	case f.ProjectedOver && e.projFor >= max(1, secs(cfg.ProjectedSustain)):
		c, ev = causeProjected, evidence("projected", f, r)
		reason = projectedReason(f)
	case f.Surge && f.Threat && !suppressed && e.surgeFor >= max(1, secs(cfg.SurgeSustain)):
		c, ev = causeSurge, evidence("surge", f, r)
		reason = surgeReason(f)
	case topOverload == w:
		c, ev = causeOverload, evidence("overload", f, r)
		reason = fmt.Sprintf("API server at %.0f%% of capacity for %ds; top contributors: %s; this workload %.0f%% of capacity above its baseline",
			r.Utilization*100, s.overloadFor, strings.Join(r.Contributors, ", "), f.ExcessShare*100)
	}
	if c != causeNone {
		ev.SustainedSeconds = max(e.surgeFor, e.projFor, s.overloadFor)
	}
	alertNow := f.Surge || f.Hot || f.ProjectedWarn || f.Contributor
	var out []Decision
	emit := func(a Action, to State, why string, ev Evidence) {
		d := Decision{Second: sec, Action: a, Workload: w, Reason: why, From: e.state.String(), To: to.String(), Epoch: e.epoch, DryRun: cfg.DryRun, Evidence: ev}
		if cfg.DryRun && a != ActionAlert {
			d.Reason = "dry-run: " + d.Reason
		}
		if to != e.state {
			e.since = sec
		}
		e.state, e.reason = to, d.Reason
		out = append(out, d)
	}
	trip := func() {
		if why := unenforceable(w); why != "" {
			if e.state != Alert || !strings.HasPrefix(e.reason, "cannot enforce") {
				emit(ActionAlert, Alert, "cannot enforce ("+why+"), not tripping: "+reason, ev)
			}
			e.quietFor = 0
			return
		}
		if s.Protected(w) {
			if e.state != Alert || !strings.HasPrefix(e.reason, "protected") {
				emit(ActionAlert, Alert, "protected workload, not tripping: "+reason, ev)
			}
			e.quietFor = 0
			return
		}
		if e.refusedNow(sec) {
			if e.state != Alert || !strings.HasPrefix(e.reason, "trip refused") {
				emit(ActionAlert, Alert, "trip refused by the agents earlier, not tripping again yet: "+reason, ev)
			}
			e.quietFor = 0
			return
		}
		if s.activeTrips() >= cfg.MaxTrips {
			if e.state != Alert || !strings.HasPrefix(e.reason, "max concurrent") {
				emit(ActionAlert, Alert, fmt.Sprintf("max concurrent trips (%d) reached, not tripping: %s", cfg.MaxTrips, reason), ev)
			}
			e.quietFor = 0
			return
		}
		e.epoch = uint64(sec)
		e.cause = c
		e.excessAtTrip = f.ExcessShare
		e.ev = ev
		emit(ActionTrip, Trip, reason, ev)
		s.version++
	}
	switch e.state {
	case Observe, Released, Alert:
		if c != causeNone {
			trip()
			break
		}
		if alertNow {
			e.quietFor = 0
			if e.state != Alert {
				rule, why := alertReason(f, r, suppressed)
				emit(ActionAlert, Alert, why, evidence(rule, f, r))
			}
			break
		}
		e.quietFor++
		if e.state == Alert && e.quietFor >= secs(cfg.AlertClear) {
			e.state, e.since, e.reason = Observe, sec, ""
		}
		if e.state == Released && sec-e.since >= secs(cfg.ReleasedHold) {
			e.state, e.since, e.reason = Observe, sec, ""
		}
		if e.state == Observe && !e.refusedNow(sec) {
			delete(s.entries, w)
		}
	case Trip:
		if e.cause == causeManual {
			if e.manualUntil > 0 && sec >= e.manualUntil {
				s.release(e, w, sec, "manual trip expired", &out)
			}
			break
		}
		if sec-e.since < secs(cfg.MinHold) {
			break
		}
		s.tryRelease(e, w, f, r, &out)
	case Releasing:
		if c != causeNone && !s.Protected(w) {
			trip()
			break
		}
		if sec-e.since >= secs(cfg.RampDuration)+secs(cfg.RampJitter) {
			e.state, e.since = Released, sec
			s.version++
		}
	}
	return out, len(out) > 0
}

func (s *Switch) releasable(e *entry, f *detect.Finding, r *detect.Result) (bool, string) {
	cfg := s.cfg
	switch e.cause {
	case causeProjected:
		if f.Projected < cfg.ReleaseBelow && f.Projected > 0 {
			return true, fmt.Sprintf("projected load at full placement now %.0f%% of capacity (< %.0f%%)", f.Projected*100, cfg.ReleaseBelow*100)
		}
		return false, ""
	case causeOverload:
		if u := r.Utilization + e.excessAtTrip; u < cfg.ReleaseBelow {
			return true, fmt.Sprintf("API server would be at %.0f%% of capacity with this workload back (< %.0f%%)", u*100, cfg.ReleaseBelow*100)
		}
		return false, ""
	default:
		return true, fmt.Sprintf("held %s; releasing gradually, re-trips if the surge returns", time.Duration(r.Second-e.since)*time.Second)
	}
}

func (s *Switch) release(e *entry, w string, sec int64, why string, out *[]Decision) {
	d := Decision{Second: sec, Action: ActionRelease, Workload: w, Reason: why, From: e.state.String(), To: Releasing.String(), Epoch: e.epoch, DryRun: s.cfg.DryRun, Evidence: e.ev}
	if s.cfg.DryRun {
		d.Reason = "dry-run: " + d.Reason
	}
	d.Evidence.Rule = "release"
	e.state, e.since, e.reason = Releasing, sec, d.Reason
	// Evidence gathered while blocked does not carry over: a re-trip needs the returning pods to show it again.
	e.surgeFor, e.projFor = 0, 0
	s.version++
	*out = append(*out, d)
}

// Manual trips or releases a workload by hand. ttl 0 means until released by hand.
func (s *Switch) Manual(sec int64, trip bool, w, reason string, ttl time.Duration) (Decision, error) {
	e := s.entry(w)
	if trip {
		if s.Protected(w) {
			return Decision{}, fmt.Errorf("workload %s is protected", w)
		}
		if e.state == Trip {
			return Decision{}, fmt.Errorf("workload %s is already tripped (epoch %d)", w, e.epoch)
		}
		from := e.state
		e.state, e.since, e.cause, e.epoch, e.reason = Trip, sec, causeManual, uint64(sec), "manual: "+reason
		e.manualUntil = 0
		if ttl > 0 {
			e.manualUntil = sec + secs(ttl)
		}
		s.version++
		return Decision{Second: sec, Action: ActionTrip, Workload: w, Reason: e.reason, From: from.String(), To: Trip.String(), Epoch: e.epoch, DryRun: s.cfg.DryRun, Manual: true, Evidence: Evidence{Rule: "manual"}}, nil
	}
	if e.state != Trip {
		return Decision{}, fmt.Errorf("workload %s is not tripped (state %s)", w, e.state)
	}
	var out []Decision
	s.release(e, w, sec, "manual: "+reason, &out)
	out[0].Manual = true
	return out[0], nil
}

// Directives returns the directive set agents should enforce now (none in dry-run).
func (s *Switch) Directives() []Directive {
	if s.cfg.DryRun {
		return nil
	}
	var out []Directive
	for w, e := range s.entries {
		switch e.state {
		case Trip:
			out = append(out, Directive{Block: true, Workload: w, Epoch: e.epoch, TTL: s.cfg.BlockTTL, Reason: e.reason})
		case Releasing:
			out = append(out, Directive{Workload: w, Epoch: e.epoch, Reason: e.reason, Issued: e.since,
				RampDuration: s.cfg.RampDuration, RampSteps: s.cfg.RampSteps, RampJitter: s.cfg.RampJitter})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Workload < out[b].Workload })
	return out
}

func surgeReason(f *detect.Finding) string {
	v := &f.View
	return fmt.Sprintf("synchronized surge: %d of %d nodes jumped above their own baseline together; fleet %.0f req/s vs baseline %.0f, %.0f%% of API capacity above baseline",
		v.SyncNodes, v.EstablishedNodes, v.Now.Requests, v.BaseRequests, f.ExcessShare*100)
}

func projectedReason(f *detect.Finding) string {
	v := &f.View
	eta := "unknown"
	if f.CollapseETA >= 0 {
		eta = (time.Duration(f.CollapseETA) * time.Second).String()
	}
	scaled := ""
	if f.SizeScaled {
		scaled = ", responses growing with the fleet"
	}
	return fmt.Sprintf("projected overload: %d of %d pods rolled out at %.3g req/s and %s/s per pod%s; at full placement the API server would be at %.0f%% of capacity; saturation in ~%s at the current pace",
		v.Pods, f.TargetPods, v.CostRequests, bytesStr(v.CostRxBytes), scaled, f.Projected*100, eta)
}

func alertReason(f *detect.Finding, r *detect.Result, suppressed bool) (string, string) {
	v := &f.View
	switch {
	case f.Surge && suppressed:
		return "fleet-wide", fmt.Sprintf("fleet-wide surge across %d workloads at once (API server restart / relist signature), not tripping: %d of %d nodes jumped",
			r.SurgingCount, v.SyncNodes, v.EstablishedNodes)
	case f.ProjectedWarn:
		return "projected", projectedReason(f)
	case f.Surge && !f.Threat:
		return "surge", surgeReason(f) + "; below the threat threshold, not tripping"
	case f.Surge:
		return "surge", surgeReason(f)
	case f.Contributor:
		return "overload", fmt.Sprintf("API server at %.0f%% of capacity; this workload %.0f%% of capacity above its baseline; top contributors: %s",
			r.Utilization*100, f.ExcessShare*100, strings.Join(r.Contributors, ", "))
	default:
		return "hot", fmt.Sprintf("hot workload: %.0f req/s vs baseline %.0f from %d nodes, %.0f%% of API capacity; trips only if it threatens capacity",
			v.Now.Requests, v.BaseRequests, v.Nodes, f.Share*100)
	}
}

func bytesStr(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// unenforceable says why a workload cannot be blocked by name on the nodes, or "" when it can: agents block pods by
// their owner workload, so traffic they could not attribute (Unknown//cgroup-N, seen e.g. for a pod whose owner is
// not resolved yet) or host processes (SystemdUnit//unit) can only be alerted on.
func unenforceable(workload string) string {
	switch {
	case strings.HasPrefix(workload, "Unknown/"):
		return "traffic not attributed to a workload"
	case strings.HasPrefix(workload, "SystemdUnit/"):
		return "host process, not a pod"
	}
	return ""
}

// dominantShare: a workload whose load above baseline is at least this share of every workload's together carries
// the overload alone.
const dominantShare = 0.6

// dominant reports whether workload w carries most of the second's load above baseline, among the workloads a
// block can act on (a rollout's pods not yet attributed to it show up as cgroups of their own meanwhile).
func dominant(r *detect.Result, w string) bool {
	var total, own float64
	for i := range r.Findings {
		f := &r.Findings[i]
		if f.ExcessShare > 0 && unenforceable(f.Workload) == "" {
			total += f.ExcessShare
			if f.Workload == w {
				own = f.ExcessShare
			}
		}
	}
	return total > 0 && own >= dominantShare*total
}
