package ingest

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/api"
)

// namesReport is a valid report for the second before sec whose pods name n workloads Deployment/<prefix>/w<i>, one
// request each, plus one pod without a workload (two requests).
func namesReport(t *testing.T, sec int64, prefix string, n int) *engine.Report {
	t.Helper()
	rep := &api.NodeReport{Node: "node-1", Sequence: uint64(sec), Timestamp: timestamppb.New(time.Unix(sec, 0)),
		Interval: durationpb.New(time.Second)}
	for i := range n {
		rep.Pods = append(rep.Pods, &api.PodDelta{Uid: fmt.Sprintf("%s-%d", prefix, i), Namespace: prefix, Name: fmt.Sprint(i),
			Workload: fmt.Sprintf("Deployment/%s/w%d", prefix, i), Delta: &api.Counters{Requests: 1}})
	}
	rep.Pods = append(rep.Pods, &api.PodDelta{Uid: prefix + "-orphan", Delta: &api.Counters{Requests: 2}})
	r, err := Convert(rep)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// unattributed returns the report's Unattributed entry and how many there are.
func unattributed(r *engine.Report) (engine.WorkloadReport, int) {
	var u engine.WorkloadReport
	n := 0
	for _, w := range r.Workloads {
		if w.Workload == Unattributed {
			u = w
			n++
		}
	}
	return u, n
}

func requests(r *engine.Report) float64 {
	sum := 0.0
	for _, w := range r.Workloads {
		sum += w.Counters.Requests
	}
	return sum
}

// clock is a settable clock for the limiter.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// New names past the per-report limit are folded into the node's one Unattributed bucket: their traffic and pods
// still count, their names are not passed on.
func TestLimiterFoldsNewNamesOverPerReportLimit(t *testing.T) {
	lim := NewLimiter(nil)
	r := namesReport(t, 1000, "a", MaxNewNamesPerReport+500)
	before := requests(r)
	if folded := lim.Apply(r); folded != 500 {
		t.Fatalf("folded %d names, want 500", folded)
	}
	if len(r.Workloads) != MaxNewNamesPerReport+1 {
		t.Fatalf("%d workloads passed on, want %d names + %s", len(r.Workloads), MaxNewNamesPerReport, Unattributed)
	}
	u, n := unattributed(r)
	if n != 1 || u.Counters.Requests != 500+2 || u.Pods != 500+1 {
		t.Fatalf("%d %s entries, last %+v; want one with the 500 folded pods and the orphan (502 requests, 501 pods)", n, Unattributed, u)
	}
	if got := requests(r); got != before {
		t.Fatalf("requests %v after folding, want %v: folding must not lose traffic", got, before)
	}
	// Names already admitted are not new: the same report again folds nothing of them.
	r = namesReport(t, 1001, "a", MaxNewNamesPerReport)
	if folded := lim.Apply(r); folded != 0 {
		t.Fatalf("known names folded: %d", folded)
	}
}

// The per-minute limit holds across reports; a new minute admits new names again, up to the stream's total.
func TestLimiterPerMinuteAndStreamLimits(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	lim := NewLimiter(c.now)
	sec := int64(1000)
	admitted := 0
	for i := range 3 {
		r := namesReport(t, sec+int64(i), fmt.Sprintf("m0r%d", i), MaxNewNamesPerReport)
		admitted += MaxNewNamesPerReport - lim.Apply(r)
		c.t = c.t.Add(time.Second)
	}
	if admitted != MaxNewNamesPerMinute {
		t.Fatalf("admitted %d new names in one minute, want %d", admitted, MaxNewNamesPerMinute)
	}
	// A minute later the stream may introduce names again, until it has sent MaxStreamNames in all.
	total := admitted
	for m := 1; m < 10; m++ {
		c.t = time.Unix(sec+int64(60*m), 0)
		for i := range 3 {
			r := namesReport(t, sec+int64(60*m+i), fmt.Sprintf("m%dr%d", m, i), MaxNewNamesPerReport)
			total += MaxNewNamesPerReport - lim.Apply(r)
			c.t = c.t.Add(time.Second)
		}
		if m == 1 && total != 2*MaxNewNamesPerMinute {
			t.Fatalf("after the second minute: %d names admitted, want %d", total, 2*MaxNewNamesPerMinute)
		}
	}
	if total != MaxStreamNames {
		t.Fatalf("stream admitted %d names in all, want %d", total, MaxStreamNames)
	}
}

// A stream cannot reset its minute by playing with its reports' timestamps: going back a second, or jumping ahead
// (a future report the engine rejects after the limiter has seen it). The minute is the aggregator's.
func TestLimiterMinuteIgnoresReportTimestamps(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	lim := NewLimiter(c.now)
	admitted := 0
	for i, sec := range []int64{1000, 999, 1061, 1001, 1122, 1002} {
		r := namesReport(t, sec, fmt.Sprintf("r%d", i), MaxNewNamesPerReport)
		admitted += MaxNewNamesPerReport - lim.Apply(r)
		c.t = c.t.Add(time.Second)
	}
	if admitted != MaxNewNamesPerMinute {
		t.Fatalf("admitted %d new names within one minute of wall time, want %d", admitted, MaxNewNamesPerMinute)
	}
}
