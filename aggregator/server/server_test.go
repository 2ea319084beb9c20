package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/api"
)

// Invalid and late reports are rejected by reason without ending the stream; valid ones count; Status needs a token.
func TestRejectsInvalidAndLateReports(t *testing.T) {
	now := time.Unix(10_000, 0)
	eng := engine.New(engine.DefaultConfig(), nil)
	srv, err := New(Config{Replica: "r", AgentTokens: NewTokens(map[string]string{"shared-token-0123456789": "n1"}),
		Now: func() time.Time { return now }}, eng, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	eng.Start(now.Unix() - 1)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterAggregatorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := api.NewAggregatorClient(conn)
	if _, err := c.Status(context.Background(), &api.StatusRequest{}); err == nil {
		t.Fatal("status without a token succeeded")
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer shared-token-0123456789")
	st, err := c.Report(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil { // the initial directive set
		t.Fatal(err)
	}
	ts := func(sec int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(sec, 0)) }
	pod := []*api.PodDelta{{Uid: "u", Workload: "Deployment/a/b", Delta: &api.Counters{Requests: 1}}}
	for _, r := range []*api.NodeReport{
		{Node: "n1", Sequence: 1, Timestamp: ts(10_001), Pods: pod},                 // ok: second 10000
		{Node: "n1", Sequence: 2, Timestamp: ts(9_990), Pods: pod},                  // late
		{Node: "N 1", Sequence: 3, Timestamp: ts(10_001), Pods: pod},                // invalid node name
		{Node: "n1", Sequence: 4, Timestamp: ts(10_001), Pods: []*api.PodDelta{{}}}, // invalid pod
	} {
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	_ = st.CloseSend()
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(srv.rejected.WithLabelValues(ReasonInvalid)) < 2 || testutil.ToFloat64(srv.rejected.WithLabelValues(ReasonLate)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("rejections: invalid %v late %v", testutil.ToFloat64(srv.rejected.WithLabelValues(ReasonInvalid)),
				testutil.ToFloat64(srv.rejected.WithLabelValues(ReasonLate)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(srv.reports); got != 1 {
		t.Fatalf("accepted %v reports, want 1", got)
	}
	resp, err := c.Status(ctx, &api.StatusRequest{})
	if err != nil || resp.GetReplica() != "r" {
		t.Fatalf("status: %v %v", resp, err)
	}
	if h := resp.GetHeadroom(); h == nil || h.GetSource() != "none" || !strings.Contains(h.GetSummary(), "headroom unknown") {
		t.Fatalf("status without the headroom estimate: %v", h)
	}
}
