package ingest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
)

func goodReport() *api.NodeReport {
	return &api.NodeReport{
		Node: "node-1", Sequence: 7,
		Timestamp: timestamppb.New(time.Unix(1000, 2e8)), Interval: durationpb.New(time.Second),
		Pods: []*api.PodDelta{
			{Uid: "u1", Namespace: "ns", Name: "a", Workload: "Deployment/ns/web", Delta: &api.Counters{Requests: 3, RxBytes: 300}},
			{Uid: "u2", Namespace: "ns", Name: "b", Workload: "Deployment/ns/web", Delta: &api.Counters{Requests: 2, RxBytes: 200, Connects: 1}},
		},
		Blocked: []*api.BlockedEntry{{Workload: "DaemonSet/x/y", Epoch: 5}},
	}
}

func TestConvertAggregatesPodsAndPicksSecond(t *testing.T) {
	r, err := Convert(goodReport())
	if err != nil {
		t.Fatal(err)
	}
	if r.Second != 999 {
		t.Errorf("second: got %d, want 999 (interval ending at 1000.2 covers mostly second 999)", r.Second)
	}
	if len(r.Workloads) != 1 || r.Workloads[0].Counters.Requests != 5 || r.Workloads[0].Pods != 2 || r.Workloads[0].Counters.Connects != 1 {
		t.Fatalf("got %+v", r.Workloads)
	}
}

func TestConvertScalesIntervalToOneSecond(t *testing.T) {
	rep := goodReport()
	rep.Interval = durationpb.New(2 * time.Second)
	r, err := Convert(rep)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Workloads[0].Counters.Requests; got != 2.5 {
		t.Fatalf("requests per second: got %v, want 2.5", got)
	}
}

func TestConvertRejectsNamingTheField(t *testing.T) {
	cases := map[string]func(r *api.NodeReport){
		"node":                   func(r *api.NodeReport) { r.Node = "Bad Node" },
		"sequence":               func(r *api.NodeReport) { r.Sequence = 0 },
		"timestamp":              func(r *api.NodeReport) { r.Timestamp = nil },
		"interval":               func(r *api.NodeReport) { r.Interval = durationpb.New(-time.Second) },
		"pods[1].workload":       func(r *api.NodeReport) { r.Pods[1].Workload = "web" },
		"pods[1].uid":            func(r *api.NodeReport) { r.Pods[1].Uid = "u1" },
		"pods[0].delta.requests": func(r *api.NodeReport) { r.Pods[0].Delta.Requests = 1 << 62 },
		"blocked[0].workload":    func(r *api.NodeReport) { r.Blocked[0].Workload = "" },
		"workloads[1].workload": func(r *api.NodeReport) {
			r.Workloads = []*api.WorkloadDelta{{Workload: "Deployment/ns/web"}, {Workload: "Deployment/ns/web"}}
		},
	}
	for field, mut := range cases {
		r := goodReport()
		mut(r)
		_, err := Convert(r)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func FuzzConvert(f *testing.F) {
	b, _ := proto.Marshal(goodReport())
	f.Add(b)
	f.Add([]byte{})
	r := goodReport()
	r.Workloads = []*api.WorkloadDelta{{Workload: "Deployment/ns/web", Pods: 2, Delta: &api.Counters{Requests: 5}}}
	b, _ = proto.Marshal(r)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rep api.NodeReport
		if err := proto.Unmarshal(data, &rep); err != nil {
			return
		}
		out, err := Convert(&rep)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || strings.TrimSpace(fe.Msg) == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if !ValidNode(out.Node) {
			t.Fatalf("accepted invalid node %q", out.Node)
		}
		for _, w := range out.Workloads {
			if !ValidWorkload(w.Workload) || w.Counters.Requests < 0 {
				t.Fatalf("accepted bad workload %+v", w)
			}
		}
	})
}

// Rates are computed over at least MinRateInterval: a 1 ns interval once scaled 5 requests to 5e9 req/s.
func TestConvertRatesOverMinimumInterval(t *testing.T) {
	for _, iv := range []time.Duration{time.Nanosecond, time.Millisecond, MinRateInterval / 2} {
		rep := goodReport()
		rep.Interval = durationpb.New(iv)
		r, err := Convert(rep)
		if err != nil {
			t.Fatal(err)
		}
		want := 5 * float64(time.Second) / float64(MinRateInterval)
		if got := r.Workloads[0].Counters.Requests; got != want {
			t.Errorf("interval %s: %v req/s, want %v (5 requests over %s)", iv, got, want, MinRateInterval)
		}
	}
}

// Pods whose workload the agent has not resolved are one Unattributed bucket per report (per node), not a name each.
func TestConvertFoldsPodsWithoutWorkload(t *testing.T) {
	rep := goodReport()
	for i := range 50 {
		rep.Pods = append(rep.Pods, &api.PodDelta{Uid: fmt.Sprintf("orphan-%d", i), Namespace: "ns", Name: fmt.Sprintf("o%d", i),
			Delta: &api.Counters{Requests: 2}})
	}
	r, err := Convert(rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Workloads) != 2 {
		t.Fatalf("%d workloads, want the named one and %s: %+v", len(r.Workloads), Unattributed, r.Workloads)
	}
	u := r.Workloads[1]
	if u.Workload != Unattributed || u.Pods != 50 || u.Counters.Requests != 100 {
		t.Fatalf("got %+v, want %s with 50 pods and 100 requests", u, Unattributed)
	}
}
