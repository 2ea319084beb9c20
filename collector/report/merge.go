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
	Epoch    uint64
	TTL      time.Duration
	Reason   string
	// Release ramp (Block false).
	RampDuration time.Duration
	RampSteps    uint32
	RampJitter   time.Duration
	// Votes is how many replicas asked for the block.
	Votes int
}

type replicaSet struct {
	set       *api.DirectiveSet
	connected bool
	lostAt    time.Time
}

// merger combines the replicas' latest sets.
type merger struct {
	mode     string
	replicas int
	blocked  map[string]Directive
}

// merge returns the directives to hand to the enforcer: every block still wanted (renewing its TTL), and a release
// for every workload that stops being blocked (with a replica's release ramp when one sent it).
func (m *merger) merge(sets map[string]*replicaSet, now time.Time, staleAfter time.Duration) []Directive {
	votes := map[string][]*api.Directive{}
	releases := map[string]*api.Directive{}
	for _, rs := range sets {
		if rs.set == nil || (!rs.connected && now.Sub(rs.lostAt) > staleAfter) {
			continue
		}
		for _, d := range rs.set.GetDirectives() {
			switch d.GetAction() {
			case api.Directive_ACTION_BLOCK:
				votes[d.GetWorkload()] = append(votes[d.GetWorkload()], d)
			case api.Directive_ACTION_RELEASE:
				releases[d.GetWorkload()] = d
			}
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
		d := Directive{Workload: w, Epoch: prev.Epoch, Reason: "no longer blocked by the aggregators"}
		if r := releases[w]; r != nil {
			d.Reason = r.GetReason()
			d.RampDuration = r.GetRamp().GetDuration().AsDuration()
			d.RampSteps = r.GetRamp().GetSteps()
			d.RampJitter = r.GetRamp().GetJitter().AsDuration()
		}
		out = append(out, d)
	}
	m.blocked = now2
	sort.Slice(out, func(a, b int) bool { return out[a].Workload < out[b].Workload })
	return out
}
