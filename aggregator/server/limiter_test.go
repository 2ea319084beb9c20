package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/ingest"
	"github.com/fanoutdev/fanout/api"
)

// freshNames is a report for second sec naming n workloads never sent before, one pod each.
func freshNames(node string, seq uint64, sec int64, prefix string, n int) *api.NodeReport {
	r := &api.NodeReport{Node: node, Sequence: seq, Timestamp: timestamppb.New(time.Unix(sec+1, 0)), Interval: durationpb.New(time.Second)}
	for i := range n {
		r.Pods = append(r.Pods, &api.PodDelta{Uid: fmt.Sprintf("%s-%d", prefix, i), Namespace: "evil", Name: fmt.Sprintf("%s-%d", prefix, i),
			Workload: fmt.Sprintf("Deployment/evil/%s-%d", prefix, i), Delta: &api.Counters{Requests: 1}})
	}
	return r
}

// A node that reconnects gains nothing: its streams, successive or concurrent, share one per-minute budget of new
// names (each stream once had its own, and a reconnect reset it).
func TestReconnectingDoesNotResetNameBudget(t *testing.T) {
	now := time.Unix(10_000, 0)
	var clock atomic.Int64 // seconds after now
	eng := engine.New(engine.DefaultConfig(), nil)
	srv, err := New(Config{Replica: "r", AgentTokens: NewTokens(map[string]string{"token-for-evil-0123456789": "evil"}),
		Now: func() time.Time { return now.Add(time.Duration(clock.Load()) * time.Second) }}, eng, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	eng.Start(now.Unix() - 1)
	dial := plainServer(t, srv)
	c := dial("token-for-evil-0123456789")
	const reconnects = 6
	per := ingest.MaxNewNamesPerReport
	sec := now.Unix()
	// A concurrent stream stays open throughout, as an attacker's second connection would.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	octx, ocancel := context.WithCancel(ctx)
	if _, err := openStream(octx, c); err != nil {
		t.Fatal(err)
	}
	for i := range reconnects {
		sctx, scancel := context.WithCancel(ctx)
		st, err := openStream(sctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(freshNames("evil", uint64(i+1), sec, fmt.Sprintf("r%d", i), per)); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(srv.reports) < float64(i+1); {
			if time.Now().After(deadline) {
				t.Fatalf("report %d not accepted", i+1)
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = st.CloseSend()
		scancel()
		eng.CloseThrough(sec) // the next report's second is open, within the same minute of the aggregator's clock
		sec++
	}
	offered := float64(reconnects * per)
	admitted := offered - testutil.ToFloat64(srv.folded)
	if admitted != ingest.MaxNewNamesPerMinute {
		t.Fatalf("%d reconnects in one minute admitted %v new names of %v, want %d", reconnects, admitted, offered, ingest.MaxNewNamesPerMinute)
	}
	// Every stream closed: the node's limiter is kept for the rest of its minute, then forgotten.
	ocancel()
	waitStreams(t, srv, 0)
	if n := srv.limiters.Len(); n != 1 {
		t.Fatalf("%d limiters held within the minute, want the node's 1", n)
	}
	clock.Store(61)
	if _, err := openStream(ctx, c); err != nil {
		t.Fatal(err)
	}
	waitStreams(t, srv, 1)
	cancel()
	waitStreams(t, srv, 0)
	if n := srv.limiters.Len(); n != 0 {
		t.Fatalf("%d limiters held with no stream open and the minute passed, want 0", n)
	}
}

func waitStreams(t *testing.T, srv *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); srv.Streams() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams open, want %d", srv.Streams(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
