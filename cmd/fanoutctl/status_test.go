package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/fanoutdev/fanout/api"
)

func TestStatusShowsHeadroom(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, &api.StatusResponse{Replica: "a", Headroom: &api.HeadroomStatus{Source: "learned", ApiserverFresh: true,
		Summary: "capacity 420 req/s / 110.0 MB/s (learned, confidence 0.80, 40 samples), utilization 60% (seats)"}}, 10)
	if !strings.Contains(out.String(), "headroom: capacity 420 req/s / 110.0 MB/s (learned, confidence 0.80, 40 samples), utilization 60% (seats); API server metrics fresh") {
		t.Fatalf("status:\n%s", out.String())
	}
}

func TestStatusShowsEnforcement(t *testing.T) {
	var laggards []string
	for i := range 20 { // the aggregator names at most 20
		laggards = append(laggards, fmt.Sprintf("node-%02d", i))
	}
	st := &api.StatusResponse{Replica: "a", Workloads: []*api.WorkloadStatus{
		{Workload: "Deployment/shop/web", State: "observe", RequestsPerS: 900},
		{Workload: "DaemonSet/monitoring/agent", State: "trip", NodesRunning: 40, NodesEnforcing: 10, Coverage: 0.25,
			Laggards: laggards,
			Refusals: []*api.NodeRefusal{{Node: "node-00", Reason: "protected"}, {Node: "node-01", Reason: "exempt\nforged line"}}},
		{Workload: "Deployment/shop/batch", State: "trip", NodesRunning: 3, NodesEnforcing: 3, Coverage: 1,
			Held: "projected return 130% of the learned capacity"},
		{Workload: "Job/shop/gone", State: "trip", Coverage: 1},
		{Workload: "Deployment/shop/api", State: "trip", NodesRunning: 200, NodesEnforcing: 199, Coverage: 0.995,
			Laggards: []string{"node-x"}},
	}}
	var out bytes.Buffer
	printStatus(&out, st, 10)
	_, got, ok := strings.Cut(out.String(), "\nenforcement of tripped workloads:\n")
	if !ok {
		t.Fatalf("no enforcement section:\n%s", out.String())
	}
	want := `  DaemonSet/monitoring/agent  enforcing 10 of 40 nodes (25%)
    laggards: node-00, node-01, node-02, node-03, node-04, node-05, node-06, node-07, node-08, node-09 +20 more
    refused:  node-00 (protected), node-01 (exempt?forged line)
  Deployment/shop/api  enforcing 199 of 200 nodes (99%)
    laggards: node-x
  Deployment/shop/batch  enforcing 3 of 3 nodes (100%)
    held:     projected return 130% of the learned capacity
  Job/shop/gone  enforcing 0 of 0 nodes (100%)
`
	if got != want {
		t.Fatalf("enforcement section:\n%s\nwant:\n%s", got, want)
	}
}

func TestStatusWithoutTripsHasNoEnforcementSection(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, &api.StatusResponse{Workloads: []*api.WorkloadStatus{{Workload: "Deployment/shop/web", State: "alert"}}}, 10)
	if strings.Contains(out.String(), "enforc") {
		t.Fatalf("enforcement section without a trip:\n%s", out.String())
	}
}

func TestBoundedList(t *testing.T) {
	id := func(s string) string { return s }
	for _, c := range []struct {
		items []string
		total int
		want  string
	}{
		{nil, 0, ""},
		{nil, 4, "+4 more"},
		{[]string{"a", "b"}, 2, "a, b"},
		{[]string{"a", "b"}, 5, "a, b +3 more"},
		{strings.Split("a b c d e f g h i j k l", " "), 12, "a, b, c, d, e, f, g, h, i, j +2 more"},
	} {
		if got := boundedList(c.items, c.total, id); got != c.want {
			t.Errorf("boundedList(%v, %d) = %q, want %q", c.items, c.total, got, c.want)
		}
	}
}
