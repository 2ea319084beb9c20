package report

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanoutdev/fanout/api"
)

func block(w string, epoch uint64) *api.Directive {
	return &api.Directive{Action: api.Directive_ACTION_BLOCK, Workload: w, Epoch: epoch, Ttl: durationpb.New(time.Minute)}
}

func TestMergeMajorityNeedsMostReplicas(t *testing.T) {
	now := time.Now()
	sets := map[string]*replicaSet{
		"a": {connected: true, set: &api.DirectiveSet{StateSynced: true, Directives: []*api.Directive{block("DaemonSet/x/y", 10)}}},
		"b": {connected: true, set: &api.DirectiveSet{StateSynced: true}},
		"c": {connected: true, set: &api.DirectiveSet{StateSynced: true}},
	}
	m := merger{mode: MergeMajority, replicas: 3, blocked: map[string]Directive{}}
	if out := m.merge(sets, now, time.Minute); len(out) != 0 {
		t.Fatalf("1 of 3 blocked under majority: %+v", out)
	}
	sets["b"].set = &api.DirectiveSet{StateSynced: true, Directives: []*api.Directive{block("DaemonSet/x/y", 10)}}
	out := m.merge(sets, now, time.Minute)
	if len(out) != 1 || !out[0].Block || out[0].Votes != 2 {
		t.Fatalf("2 of 3: %+v", out)
	}
	// Replica b goes away and becomes stale: the block loses its majority and is released.
	sets["b"].connected, sets["b"].lostAt = false, now.Add(-2*time.Minute)
	out = m.merge(sets, now, time.Minute)
	if len(out) != 1 || out[0].Block {
		t.Fatalf("after b went stale: %+v", out)
	}
	any := merger{mode: MergeAny, replicas: 3, blocked: map[string]Directive{}}
	if out := any.merge(sets, now, time.Minute); len(out) != 1 || !out[0].Block {
		t.Fatalf("any: %+v", out)
	}
}
