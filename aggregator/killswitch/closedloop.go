package killswitch

import (
	"fmt"
	"sort"
)

// Refuse records that the fleet refused to enforce trip epoch of w (e.g. the agents hold it protected): the trip is
// withdrawn, its MaxTrips slot freed, and the workload alerts instead of re-tripping for MinHold. It returns the
// decision to audit, or false when w is not tripped at that epoch.
func (s *Switch) Refuse(sec int64, w string, epoch uint64, reason string) (Decision, bool) {
	e := s.entries[w]
	if e == nil || e.state != Trip || e.epoch != epoch {
		return Decision{}, false
	}
	d := Decision{Second: sec, Action: ActionAlert, Workload: w, From: e.state.String(), To: Alert.String(), Epoch: e.epoch,
		DryRun: s.cfg.DryRun, Evidence: e.ev,
		Reason: fmt.Sprintf("trip refused by the agents (%s): not enforced, slot freed; alerting only", reason)}
	d.Evidence.Rule = "refused"
	e.state, e.since, e.reason, e.quietFor = Alert, sec, d.Reason, 0
	e.refusedUntil = sec + secs(s.cfg.MinHold)
	e.surgeFor, e.projFor = 0, 0
	s.version++
	return d, true
}

// refusedNow says whether w's last trip was refused recently (it must not trip again at once).
func (e *entry) refusedNow(sec int64) bool { return sec < e.refusedUntil }

// Saved is one trip in a snapshot of the switch (a restarted aggregator restores it before it may release).
type Saved struct {
	Workload    string `json:"workload"`
	State       string `json:"state"` // trip or releasing
	Since       int64  `json:"since"`
	Epoch       uint64 `json:"epoch"`
	Cause       string `json:"cause"`
	Reason      string `json:"reason,omitempty"`
	ManualUntil int64  `json:"manual_until,omitempty"`
	// ExcessAtTrip is the workload's load above baseline when it tripped (overload trips release against it).
	ExcessAtTrip float64 `json:"excess_at_trip,omitempty"`
}

var causeNames = map[cause]string{causeNone: "none", causeSurge: "surge", causeProjected: "projected",
	causeOverload: "overload", causeManual: "manual", causeAdopted: "adopted"}

func causeOf(name string) cause {
	for c, n := range causeNames {
		if n == name {
			return c
		}
	}
	return causeAdopted
}

// Snapshot returns every trip (blocked or releasing), sorted by workload.
func (s *Switch) Snapshot() []Saved {
	var out []Saved
	for w, e := range s.entries {
		if e.state != Trip && e.state != Releasing {
			continue
		}
		out = append(out, Saved{Workload: w, State: e.state.String(), Since: e.since, Epoch: e.epoch, Cause: causeNames[e.cause],
			Reason: e.reason, ManualUntil: e.manualUntil, ExcessAtTrip: e.excessAtTrip})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Workload < out[b].Workload })
	return out
}

// Restore puts saved trips back (a restarted aggregator, before it closes any second). Protected workloads and
// entries in other states are skipped; it returns how many trips it restored.
func (s *Switch) Restore(saved []Saved) int {
	n := 0
	for _, sv := range saved {
		var st State
		switch sv.State {
		case Trip.String():
			st = Trip
		case Releasing.String():
			st = Releasing
		default:
			continue
		}
		if sv.Workload == "" || s.Protected(sv.Workload) {
			continue
		}
		e := s.entry(sv.Workload)
		e.state, e.since, e.epoch, e.cause, e.reason = st, sv.Since, sv.Epoch, causeOf(sv.Cause), sv.Reason
		e.manualUntil, e.excessAtTrip = sv.ManualUntil, sv.ExcessAtTrip
		e.ev = Evidence{Rule: "restored"}
		n++
	}
	if n > 0 {
		s.version++
	}
	return n
}

// Adopt takes over a block the agents report that this switch does not hold (it restarted without a snapshot, or the
// snapshot is older): the workload is tripped again at the agents' epoch, its hold counted from now, so a restart
// never releases it early. Releasing entries are adopted as releasing from now. Protected workloads, epochs this
// switch already holds or has released, are ignored. It returns the decision to audit.
func (s *Switch) Adopt(sec int64, w string, epoch uint64, releasing bool) (Decision, bool) {
	if w == "" || epoch == 0 || s.Protected(w) || unenforceable(w) != "" {
		return Decision{}, false
	}
	e := s.entries[w]
	if e != nil && e.epoch >= epoch && (e.state == Trip || e.state == Releasing || e.state == Released) {
		return Decision{}, false
	}
	if e == nil {
		e = s.entry(w)
	}
	from := e.state
	to := Trip
	if releasing {
		to = Releasing
	}
	e.state, e.since, e.epoch, e.cause = to, sec, epoch, causeAdopted
	e.reason = fmt.Sprintf("adopted from the agents' reported blocks (epoch %d) after a restart", epoch)
	e.ev = Evidence{Rule: "adopted"}
	s.version++
	a := ActionTrip
	if releasing {
		a = ActionRelease
	}
	return Decision{Second: sec, Action: a, Workload: w, Reason: e.reason, From: from.String(), To: to.String(), Epoch: epoch,
		DryRun: s.cfg.DryRun, Evidence: e.ev}, true
}
