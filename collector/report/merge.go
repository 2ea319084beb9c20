package report

import (
	"sort"
	"time"

	"github.com/fanoutdev/fanout/api"
)

// Directive is a merged directive for the enforcer.
type Directive struct {
	Block    bool
	Workload string
	// Epoch identifies the trip (the same on every replica); 0 = unknown.
	Epoch  uint64
	TTL    time.Duration
	Reason string
	// Release ramp (Block false). A release for a workload that merely vanished from the sets carries no ramp: the
	// enforcer then runs its default ramp (every release ramps).
	RampDuration time.Duration
	RampSteps    uint32
	RampJitter   time.Duration
	// Issued is when the release ramp started (zero: now).
	Issued time.Time
	// Votes is how many replicas asked for the block.
	Votes int
}

// replicaSet is the latest accepted directive set of one replica and its ordering keys.
type replicaSet struct {
	set       *api.DirectiveSet
	connected bool
	lostAt    time.Time
	// stream counts this replica's streams: a set from an older stream never replaces one from a newer stream.
	stream uint64
}

// newer reports whether set, received on stream, may replace the current one: sets of an older stream, and sets of
// the same replica process (incarnation) with an older version, are stale.
func (rs *replicaSet) newer(stream uint64, set *api.DirectiveSet) bool {
	if rs.set == nil {
		return true
	}
	if stream < rs.stream {
		return false
	}
	if set.GetIncarnation() == rs.set.GetIncarnation() && set.GetVersion() < rs.set.GetVersion() {
		return false
	}
	return true
}

// merger combines the replicas' latest sets.
type merger struct {
	mode     string
	replicas int
	blocked  map[string]Directive
}

// merge returns the directives to hand to the enforcer: every block still wanted (renewing its TTL), and a release
// for every workload that stops being blocked (with a replica's release ramp when one sent it).
//
// Ordering across replicas: a release of epoch E (from a synced replica) supersedes blocks of epoch <= E; a block of
// a newer epoch supersedes the release. Crash safety: a replica whose state_synced is false may add blocks but its
// silence is no release; a workload is released only when, counting every unsynced replica as a block vote, the
// blocks still lack the votes they need, and at least one synced replica is heard. Otherwise the block is held (the
// enforcer keeps it from its pinned records; its TTL still applies).
func (m *merger) merge(sets map[string]*replicaSet, now time.Time, staleAfter time.Duration) []Directive {
	votes := map[string][]*api.Directive{}
	releases := map[string]*api.Directive{}
	synced, unsynced := 0, 0
	var fresh []*api.DirectiveSet
	for _, rs := range sets {
		if rs.set == nil || (!rs.connected && now.Sub(rs.lostAt) > staleAfter) {
			continue
		}
		fresh = append(fresh, rs.set)
		if !rs.set.GetStateSynced() {
			unsynced++
			continue
		}
		synced++
		for _, d := range rs.set.GetDirectives() {
			if d.GetAction() == api.Directive_ACTION_RELEASE {
				if r := releases[d.GetWorkload()]; r == nil || d.GetEpoch() > r.GetEpoch() {
					releases[d.GetWorkload()] = d
				}
			}
		}
	}
	for _, set := range fresh {
		for _, d := range set.GetDirectives() {
			if d.GetAction() != api.Directive_ACTION_BLOCK {
				continue
			}
			if r := releases[d.GetWorkload()]; r != nil && d.GetEpoch() <= r.GetEpoch() {
				continue // released by a replica that knows the trip
			}
			votes[d.GetWorkload()] = append(votes[d.GetWorkload()], d)
		}
	}
	need := 1
	if m.mode == MergeMajority {
		need = m.replicas/2 + 1
	}
	var out []Directive
	now2 := map[string]Directive{}
	for w, ds := range votes {
		if len(ds) < need {
			continue
		}
		// Deterministic pick among replicas: the highest epoch, then the longest TTL.
		sort.Slice(ds, func(a, b int) bool {
			if ds[a].GetEpoch() != ds[b].GetEpoch() {
				return ds[a].GetEpoch() > ds[b].GetEpoch()
			}
			return ds[a].GetTtl().AsDuration() > ds[b].GetTtl().AsDuration()
		})
		d := Directive{Block: true, Workload: w, Epoch: ds[0].GetEpoch(), TTL: ds[0].GetTtl().AsDuration(), Reason: ds[0].GetReason(), Votes: len(ds)}
		now2[w] = d
		out = append(out, d)
	}
	for w, prev := range m.blocked {
		if _, still := now2[w]; still {
			continue
		}
		r := releases[w]
		if r != nil && r.GetEpoch() < prev.Epoch {
			r = nil // the release of an older trip says nothing of this one
		}
		if r == nil && (synced == 0 || len(votes[w])+unsynced >= need) {
			now2[w] = prev // hold: nobody who knows the state said it is over
			continue
		}
		d := Directive{Workload: w, Epoch: prev.Epoch, Reason: "no longer blocked by the aggregators"}
		if r != nil {
			d.Epoch, d.Reason = r.GetEpoch(), r.GetReason()
			d.RampDuration = r.GetRamp().GetDuration().AsDuration()
			d.RampSteps = r.GetRamp().GetSteps()
			d.RampJitter = r.GetRamp().GetJitter().AsDuration()
			if r.GetIssued() != nil {
				d.Issued = r.GetIssued().AsTime()
			}
		}
		out = append(out, d)
	}
	m.blocked = now2
	sort.Slice(out, func(a, b int) bool { return out[a].Workload < out[b].Workload })
	return out
}
