package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
)

// loadPlan is what the node's pods do in load windows, and how their own counts are read back.
type loadPlan struct {
	pods         int
	scale        float64 // nodeWorkloads' per-pod rates times scale sum to -rate
	newConnEvery time.Duration
	describe     string
	ids          []string // workload IDs as fanout writes them, in nodeWorkloads order
	rec          *fleet.Recorder
}

func newLoadPlan(o options, wls []*fleet.Workload, rec *fleet.Recorder) loadPlan {
	l := loadPlan{rec: rec}
	total := 0.0
	for _, w := range nodeWorkloads {
		total += float64(w.pods) * w.rate
		l.pods += w.pods
	}
	l.scale = o.rate / total
	l.newConnEvery = time.Duration(float64(l.pods) / o.newConns * float64(time.Second))
	var ds, dep []string
	for i, w := range nodeWorkloads {
		l.ids = append(l.ids, wls[i].ID())
		if w.kind == "DaemonSet" {
			ds = append(ds, fmt.Sprintf("%s %g/s", w.name, w.rate*l.scale))
		} else {
			dep = append(dep, fmt.Sprintf("%s %d × %g/s", w.name, w.pods, w.rate*l.scale))
		}
	}
	l.describe = strings.Join(ds, ", ") + "; Deployments " + strings.Join(dep, ", ")
	return l
}

type workloadRow struct {
	id               string
	pods             int
	offered, counted float64
}

// rows compares, per workload, the calls its pods completed (their own per-second counts over the whole seconds
// inside the windows) with the requests the agent counted for it.
func (l loadPlan) rows(c condition) []workloadRow {
	var out []workloadRow
	for i, id := range l.ids {
		var calls, secs float64
		for _, w := range c.windows {
			calls += float64(l.rec.Sum(id, w.fromSec, w.toSec).OK)
			secs += float64(w.toSec - w.fromSec)
		}
		out = append(out, workloadRow{id: id, pods: nodeWorkloads[i].pods, offered: calls / secs,
			counted: c.perSecond("fanout_workload_api_requests_total", `workload="`+id+`"`)})
	}
	return out
}
