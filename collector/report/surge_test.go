package report

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/server"
	"github.com/fanoutdev/fanout/api"
)

// The live path end to end, in accelerated time (10 simulated seconds per real second): 20 agents stream reports to
// a real aggregator over gRPC, a DaemonSet surges on every node, the aggregator detects the synchronized surge and
// every agent's handler receives the block.
func TestLiveSurgeReachesEveryAgent(t *testing.T) {
	const speed = 10
	realStart := time.Now()
	base := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return base.Add(time.Since(realStart) * speed) }
	onset := base.Add(45 * time.Second)

	const agents = 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := engine.DefaultConfig()
	cfg.Detect.CapacityRequestsPerS = 2000
	eng := engine.New(cfg, nil)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.New(server.Config{Replica: "r1", Now: now, Grace: time.Second,
		AgentTokens: server.NewTokens(surgeTokens(agents))}, eng, prometheus.NewRegistry(), logger)
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
	defer gs.Stop()
	go func() { _ = srv.Run(ctx) }()

	var blocked atomic.Int32
	for i := 0; i < agents; i++ {
		rc := DefaultConfig()
		node := fmt.Sprintf("node-%02d", i)
		rc.Addresses, rc.Node, rc.TokenFile, rc.Insecure = []string{lis.Addr().String()}, node, writeToken(t, agentToken+node), true
		var got atomic.Bool
		c, err := New(rc, func(d Directive) {
			if d.Block && d.Workload == "DaemonSet/x/agent" && !got.Swap(true) {
				blocked.Add(1)
			}
		}, prometheus.NewRegistry(), logger)
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = c.Run(ctx) }()
		go func() {
			tick := time.NewTicker(time.Second / speed)
			defer tick.Stop()
			for n := uint64(0); ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				ts := now()
				req := uint64(2 + n%2)
				if ts.After(onset.Add(time.Second)) {
					req = 40
				}
				c.Submit(&api.NodeReport{Timestamp: timestamppb.New(ts), Interval: durationpb.New(time.Second),
					Pods: []*api.PodDelta{{Uid: rc.Node + "-agent", Namespace: "x", Name: "agent-" + rc.Node, Workload: "DaemonSet/x/agent",
						Delta: &api.Counters{Requests: req, RxBytes: req * 1000}}}})
			}
		}()
	}
	for blocked.Load() < agents {
		if ctx.Err() != nil {
			t.Fatalf("%d of %d agents received the block; status %+v", blocked.Load(), agents, eng.Status().Workloads)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if el := now().Sub(onset); el > 10*time.Second {
		t.Fatalf("block reached all agents %s (simulated) after the onset", el)
	} else {
		t.Logf("block reached all %d agents %s (simulated) after the onset", agents, el.Round(100*time.Millisecond))
	}
	if now().Before(onset) {
		t.Fatal("tripped before the surge")
	}
}

// surgeTokens gives each of n nodes its own token (agentToken + node name): one credential, one node.
func surgeTokens(n int) map[string]string {
	m := map[string]string{}
	for i := 0; i < n; i++ {
		node := fmt.Sprintf("node-%02d", i)
		m[agentToken+node] = node
	}
	return m
}
