package report

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/server"
	"github.com/fanoutdev/fanout/api"
)

const (
	agentToken = "agent-token-0123456789"
	adminToken = "admin-token-0123456789"
)

type aggregator struct {
	addr string
	srv  *server.Server
	eng  *engine.Engine
	reg  *prometheus.Registry
}

func startAggregator(t *testing.T, ctx context.Context, name string) *aggregator {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(engine.DefaultConfig(), nil)
	reg := prometheus.NewRegistry()
	srv, err := server.New(server.Config{Replica: name, Refresh: 200 * time.Millisecond,
		AgentTokens: server.NewTokens(map[string]string{agentToken: "node-a", "node-only-token-xyz": "node-b"}),
		AdminTokens: server.NewTokens(map[string]string{adminToken: "*"})}, eng, reg, logger)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterAggregatorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	go func() { _ = srv.Run(ctx) }()
	t.Cleanup(gs.Stop)
	return &aggregator{addr: lis.Addr().String(), srv: srv, eng: eng, reg: reg}
}

func writeToken(t *testing.T, tok string) string {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func adminCall(t *testing.T, addr string, trip bool, workload string) error {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds{token: adminToken}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &api.ManualRequest{Workload: workload, Reason: "test", Ttl: durationpb.New(time.Minute)}
	if trip {
		_, err = api.NewAggregatorClient(conn).Trip(ctx, req)
	} else {
		_, err = api.NewAggregatorClient(conn).Release(ctx, req)
	}
	return err
}

type recorder struct {
	mu  sync.Mutex
	got []Directive
}

func (r *recorder) handle(d Directive) {
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
}

func (r *recorder) wait(t *testing.T, what string, ok func(Directive) bool) Directive {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, d := range r.got {
			if ok(d) {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
	return Directive{}
}

// Two real aggregator replicas on loopback: the agent reports to both, a manual trip on one reaches the agent under
// "any" merging, the release comes with its ramp, and reports are counted by the aggregators.
func TestClientReportsToReplicasAndMergesDirectives(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a1, a2 := startAggregator(t, ctx, "r1"), startAggregator(t, ctx, "r2")
	cfg := DefaultConfig()
	cfg.Addresses = []string{a1.addr, a2.addr}
	cfg.Node = "node-a"
	cfg.TokenFile, cfg.Insecure = writeToken(t, agentToken), true
	rec := &recorder{}
	c, err := New(cfg, rec.handle, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Run(ctx) }()
	for i := 0; i < 3; i++ {
		c.Submit(&api.NodeReport{Interval: durationpb.New(time.Second), Pods: []*api.PodDelta{
			{Uid: "u1", Namespace: "ns", Name: "p", Workload: "Deployment/ns/web", Delta: &api.Counters{Requests: 4}}}})
	}
	waitFor(t, "reports accepted by both replicas", func() bool {
		return testutil.ToFloat64(c.sent) >= 6
	})
	if err := adminCall(t, a1.addr, true, "Deployment/ns/web"); err != nil {
		t.Fatal(err)
	}
	d := rec.wait(t, "block", func(d Directive) bool { return d.Block && d.Workload == "Deployment/ns/web" })
	if d.Votes != 1 || d.TTL <= 0 || d.Epoch == 0 {
		t.Fatalf("block directive: %+v", d)
	}
	if err := adminCall(t, a1.addr, false, "Deployment/ns/web"); err != nil {
		t.Fatal(err)
	}
	r := rec.wait(t, "release", func(d Directive) bool { return !d.Block && d.Workload == "Deployment/ns/web" })
	if r.RampSteps == 0 || r.RampDuration <= 0 {
		t.Fatalf("release without ramp: %+v", r)
	}
	// Manual actions need the admin token.
	if err := adminCallWith(t, a1.addr, agentToken); err == nil {
		t.Fatal("trip with an agent token succeeded")
	}
}

func adminCallWith(t *testing.T, addr, tok string) error {
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(tokenCreds{token: tok}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = api.NewAggregatorClient(conn).Trip(context.Background(), &api.ManualRequest{Workload: "Deployment/ns/web", Reason: "x"})
	return err
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Unauthenticated agents and agents reporting for another node are rejected and counted by reason.
func TestAggregatorRejectsUnknownAgents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := startAggregator(t, ctx, "r1")
	run := func(node, tok string) {
		cfg := DefaultConfig()
		cfg.Addresses, cfg.Node = []string{a.addr}, node
		if tok != "" {
			cfg.TokenFile, cfg.Insecure = writeToken(t, tok), true
		}
		c, err := New(cfg, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		go func() { _ = c.Run(cctx) }()
		c.Submit(&api.NodeReport{})
		waitFor(t, "stream error", func() bool { return testutil.ToFloat64(c.errs) >= 1 })
	}
	run("node-a", "")                    // no token
	run("node-a", "node-only-token-xyz") // token of node-b
	rej := func(reason string) float64 {
		mfs, err := a.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "fanout_aggregator_reports_rejected_total" {
				for _, m := range mf.GetMetric() {
					if m.GetLabel()[0].GetValue() == reason {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
	if rej("unauthenticated") < 1 || rej("unknown_agent") < 1 {
		t.Fatalf("rejections: unauthenticated=%v unknown_agent=%v", rej("unauthenticated"), rej("unknown_agent"))
	}
}

// With every aggregator down, Submit returns at once, keeps at most Buffer reports and counts the drops.
func TestSubmitNeverBlocksAndDropsOldest(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	cfg := DefaultConfig()
	cfg.Addresses, cfg.Node, cfg.Buffer = []string{addr}, "node-a", 5
	cfg.BackoffMin, cfg.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	c, err := New(cfg, nil, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	start := time.Now()
	for i := 0; i < 1000; i++ {
		c.Submit(&api.NodeReport{})
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("1000 submits took %s", el)
	}
	if got := testutil.ToFloat64(c.dropped.WithLabelValues(addr)); got < 995 {
		t.Fatalf("dropped %v, want >= 995", got)
	}
	c.replicas[0].mu.Lock()
	n, last := len(c.replicas[0].buf), c.replicas[0].buf[len(c.replicas[0].buf)-1].Sequence
	c.replicas[0].mu.Unlock()
	if n > 5 || last != 1000 {
		t.Fatalf("buffer holds %d reports, newest seq %d; want <= 5 and 1000", n, last)
	}
	waitFor(t, "reconnect attempts", func() bool { return testutil.ToFloat64(c.errs) >= 2 })
}
