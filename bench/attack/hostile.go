package main

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
)

// Kinds of hostile report, sent every second by every attacker.
const (
	kindWide    = "wide"    // 10,000 fresh workloads (over the 5,000 a report may carry) and 10,000 fresh pods
	kindBypass  = "bypass"  // pods only, each naming a fresh workload (the old way around the workload limit)
	kindValid   = "valid"   // the most a valid report may carry: 5,000 fresh workloads, 2 fresh pods each
	kindRepeat  = "repeat"  // kindValid again for the same second, with fresh names again
	kindTinyIvl = "1ns"     // pods without a workload, 1 request each, over a claimed 1 ns interval
	maxValidWls = 5_000     // ingest.MaxWorkloads
	evilNS      = "evil"    // namespace of every hostile name
	kindsPerSec = 4         // reports per attacker per second
	requestsPer = uint64(1) // requests per hostile pod
)

// namer hands out names never used before.
type namer struct {
	prefix string
	n      uint64
}

func (g *namer) next() string {
	g.n++
	return g.prefix + strconv.FormatUint(g.n, 36)
}

// hostile builds one attacker's reports.
type hostile struct {
	node  string
	seq   uint64
	wls   namer // workload names
	pods  namer // pod UIDs and names
	names int   // fresh names per report
}

func newHostile(node string, names int) *hostile {
	return &hostile{node: node, names: names, wls: namer{prefix: "Deployment/" + evilNS + "/" + node + "-w"},
		pods: namer{prefix: node + "-p"}}
}

// report returns a report of the kind for second sec (the second just ended: its end is sec+1).
func (h *hostile) report(kind string, sec int64) *api.NodeReport {
	h.seq++
	end := time.Unix(sec+1, 0)
	r := &api.NodeReport{Node: h.node, Sequence: h.seq, Timestamp: timestamppb.New(end), Interval: durationpb.New(time.Second)}
	switch kind {
	case kindWide:
		h.withWorkloads(r, h.names, 1)
	case kindValid, kindRepeat:
		h.withWorkloads(r, maxValidWls, h.names/maxValidWls)
	case kindBypass:
		r.Pods = make([]*api.PodDelta, h.names)
		for i := range r.Pods {
			r.Pods[i] = h.pod(h.wls.next())
		}
	case kindTinyIvl:
		// The interval ends 1 ns before sec+1 and lasts 1 ns: it falls in second sec. Scaled as written, 10,000
		// requests in 1 ns would read as 1e13 req/s.
		r.Timestamp = timestamppb.New(end.Add(-time.Nanosecond))
		r.Interval = durationpb.New(time.Nanosecond)
		r.Pods = make([]*api.PodDelta, h.names)
		for i := range r.Pods {
			r.Pods[i] = h.pod("")
		}
	}
	return r
}

// withWorkloads fills r with n fresh workloads and perWl fresh pods for each.
func (h *hostile) withWorkloads(r *api.NodeReport, n, perWl int) {
	perWl = max(perWl, 1)
	r.Workloads = make([]*api.WorkloadDelta, n)
	r.Pods = make([]*api.PodDelta, 0, n*perWl)
	for i := range r.Workloads {
		wl := h.wls.next()
		r.Workloads[i] = &api.WorkloadDelta{Workload: wl, Pods: uint32(perWl), Delta: &api.Counters{Requests: requestsPer * uint64(perWl)}}
		for range perWl {
			r.Pods = append(r.Pods, h.pod(wl))
		}
	}
}

func (h *hostile) pod(workload string) *api.PodDelta {
	id := h.pods.next()
	return &api.PodDelta{Uid: id, Namespace: evilNS, Name: id, Workload: workload, Delta: &api.Counters{Requests: requestsPer}}
}
