package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/api"
)

// rejectLog counts the server's "report rejected" log records by node.
type rejectLog struct {
	mu     sync.Mutex
	byNode map[string][]string // node -> reasons
}

func (l *rejectLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *rejectLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *rejectLog) WithGroup(string) slog.Handler            { return l }
func (l *rejectLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "report rejected" {
		return nil
	}
	var node, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "node":
			node = a.Value.String()
		case "reason":
			reason = a.Value.String()
		case "err":
			reason += " (" + a.Value.String() + ")"
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byNode[node] = append(l.byNode[node], reason)
	return nil
}

func (l *rejectLog) of(node string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.byNode[node]...)
}

// plainServer serves srv without TLS on a loopback port and returns a dial function for agents holding a token.
func plainServer(t *testing.T, srv *Server) func(token string) api.AggregatorClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	api.RegisterAggregatorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return func(token string) api.AggregatorClient {
		conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearerCreds(token)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return api.NewAggregatorClient(conn)
	}
}

type bearerCreds string

func (b bearerCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearerCreds) RequireTransportSecurity() bool { return false }

// openStream opens a report stream and drains the directive sets sent back.
func openStream(ctx context.Context, c api.AggregatorClient) (api.Aggregator_ReportClient, error) {
	st, err := c.Report(ctx)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	return st, nil
}

func workloadNow(st engine.Status, name string) (fleet.Counters, bool) {
	for _, w := range st.Workloads {
		if w.Workload == name {
			return w.Now, true
		}
	}
	return fleet.Counters{}, false
}

// A node that sends a second twice (a retry, a replayed report) has the repeat rejected as duplicate_second, and the
// second's counters are the first report's, not their sum.
func TestRepeatedSecondRejectedNotSummed(t *testing.T) {
	now := time.Unix(10_000, 0)
	eng := engine.New(engine.DefaultConfig(), nil)
	reg := prometheus.NewRegistry()
	srv, err := New(Config{Replica: "r", AgentTokens: NewTokens(map[string]string{"token-for-node-1-0123": "n1"}),
		Now: func() time.Time { return now }}, eng, reg, slog.New(&rejectLog{byNode: map[string][]string{}}))
	if err != nil {
		t.Fatal(err)
	}
	eng.Start(now.Unix() - 1)
	dial := plainServer(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := openStream(ctx, dial("token-for-node-1-0123"))
	if err != nil {
		t.Fatal(err)
	}
	pods := []*api.PodDelta{{Uid: "u", Workload: "Deployment/a/b", Delta: &api.Counters{Requests: 100}}}
	for seq := uint64(1); seq <= 2; seq++ { // second 10000 twice, the second time with the next sequence
		if err := st.Send(&api.NodeReport{Node: "n1", Sequence: seq, Timestamp: timestamppb.New(time.Unix(10_001, 0)),
			Interval: durationpb.New(time.Second), Pods: pods}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(srv.rejected.WithLabelValues(ReasonDuplicate)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("repeat not rejected as %s: accepted %v", ReasonDuplicate, testutil.ToFloat64(srv.reports))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(srv.reports); got != 1 {
		t.Fatalf("accepted %v reports, want 1", got)
	}
	eng.CloseThrough(10_000)
	c, ok := workloadNow(eng.Status(), "Deployment/a/b")
	if !ok || c.Requests != 100 {
		t.Fatalf("second 10000: %+v (found %v), want 100 requests, not the sum of both reports", c, ok)
	}
}

// hostileReport names n workloads never sent before, one pod each.
func hostileReport(node string, seq uint64, sec int64, n int, fresh *atomic.Int64) *api.NodeReport {
	r := &api.NodeReport{Node: node, Sequence: seq, Timestamp: timestamppb.New(time.Unix(sec+1, 0)), Interval: durationpb.New(time.Second)}
	r.Pods = make([]*api.PodDelta, n)
	for i := range r.Pods {
		id := fresh.Add(1)
		r.Pods[i] = &api.PodDelta{Uid: fmt.Sprintf("u%d", id), Namespace: "evil", Name: fmt.Sprintf("p%d", id),
			Workload: fmt.Sprintf("Deployment/evil/w%d", id), Delta: &api.Counters{Requests: 1}}
	}
	return r
}

// Finding 2 through the real gRPC server: two credentials stream fresh workload names (10,000 per report, which is
// refused whole, and 5,000, the most a valid report may carry), reconnecting for fresh per-stream limits and spreading
// their reports over the open seconds, while a real agent reports once a second. The agent's reports are never
// rejected and its traffic counts; the excess names are folded (fanout_aggregator_names_folded_total); the workloads
// held never exceed the fleet bound (plus its overflow bucket).
func TestHostileNamesBoundedWhileAgentReports(t *testing.T) {
	const attack = 3 * time.Second
	cfg := engine.DefaultConfig()
	cfg.Fleet.MaxWorkloads = 1500
	eng := engine.New(cfg, nil)
	reg := prometheus.NewRegistry()
	rejects := &rejectLog{byNode: map[string][]string{}}
	tokens := map[string]string{"token-for-good-0123456789": "good"}
	for i := range 2 {
		tokens[fmt.Sprintf("token-for-evil-%d-01234567", i)] = fmt.Sprintf("evil-%d", i)
	}
	srv, err := New(Config{Replica: "r", AgentTokens: NewTokens(tokens)}, eng, reg, slog.New(rejects))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = srv.Run(ctx) }()
	dial := plainServer(t, srv)

	// The real agent: one report a second for the second just ended, 100 req/s from two pods of one workload.
	const goodWorkload = "Deployment/good/web"
	var (
		goodMu   sync.Mutex
		goodSecs = map[int64]bool{}
		goodErr  error
	)
	goodDone := make(chan struct{})
	goodStop := make(chan struct{})
	goodStarted := make(chan struct{})
	go func() {
		defer close(goodDone)
		st, err := openStream(ctx, dial("token-for-good-0123456789"))
		for seq := uint64(1); ; seq++ {
			next := time.Now().Truncate(time.Second).Add(time.Second)
			select {
			case <-goodStop:
				return
			case <-time.After(time.Until(next) + 100*time.Millisecond):
			}
			rep := &api.NodeReport{Node: "good", Sequence: seq, Timestamp: timestamppb.New(next), Interval: durationpb.New(time.Second),
				Pods: []*api.PodDelta{
					{Uid: "g1", Namespace: "good", Name: "web-1", Workload: goodWorkload, Delta: &api.Counters{Requests: 60}},
					{Uid: "g2", Namespace: "good", Name: "web-2", Workload: goodWorkload, Delta: &api.Counters{Requests: 40}},
				}}
			if err == nil {
				err = st.Send(rep)
			}
			if err != nil {
				goodMu.Lock()
				goodErr = err
				goodMu.Unlock()
				return
			}
			goodMu.Lock()
			goodSecs[next.Unix()-1] = true
			goodMu.Unlock()
			if seq == 1 {
				close(goodStarted)
			}
		}
	}()
	// The agent was there before the attack: its workload is already known when the flood starts.
	select {
	case <-goodStarted:
	case <-time.After(3 * time.Second):
		t.Fatal("the agent's first report was not sent")
	}
	deadline := time.Now().Add(3 * time.Second)
	for testutil.ToFloat64(srv.reports) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the agent's first report was not accepted: rejected %v", rejects.of("good"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	var fresh atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(attack)
	for i := range 2 {
		node, c := fmt.Sprintf("evil-%d", i), dial(fmt.Sprintf("token-for-evil-%d-01234567", i))
		wg.Go(func() {
			seq := uint64(0)
			for time.Now().Before(end) {
				sctx, scancel := context.WithCancel(ctx)
				st, err := openStream(sctx, c)
				if err != nil {
					scancel()
					return
				}
				for k := range 3 { // a new stream (and fresh per-stream limits) every 3 reports
					seq++
					n := 5_000
					if k == 2 {
						n = 10_000
					}
					sec := time.Now().Unix() - 1 + int64(k%3) // spread over the open seconds
					if err := st.Send(hostileReport(node, seq, sec, n, &fresh)); err != nil {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				_ = st.CloseSend()
				scancel()
			}
		})
	}
	// Watch the engine during the attack: the workloads held stay bounded, and every closed second the agent
	// reported carries its 100 req/s.
	bound := cfg.Fleet.MaxWorkloads + 1 // + fleet.Overflow
	maxHeld, overflowSeen, goodChecked := 0, false, 0
	checked := map[int64]bool{}
	watch := func() {
		st := eng.Status()
		maxHeld = max(maxHeld, len(st.Workloads))
		if _, ok := workloadNow(st, fleet.Overflow); ok {
			overflowSeen = true
		}
		goodMu.Lock()
		reported := goodSecs[st.Second]
		goodMu.Unlock()
		if reported && !checked[st.Second] {
			checked[st.Second] = true
			if c, ok := workloadNow(st, goodWorkload); !ok || c.Requests != 100 {
				t.Errorf("second %d: %s has %+v (found %v), want 100 req/s", st.Second, goodWorkload, c, ok)
			}
			goodChecked++
		}
	}
	for time.Now().Before(end) {
		watch()
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	close(goodStop)
	<-goodDone
	// Let the seconds the agent reported close.
	goodMu.Lock()
	last := int64(0)
	for s := range goodSecs {
		last = max(last, s)
	}
	goodMu.Unlock()
	for deadline := time.Now().Add(3 * time.Second); eng.Status().Second < last && time.Now().Before(deadline); {
		watch()
		time.Sleep(50 * time.Millisecond)
	}
	watch()

	if goodErr != nil {
		t.Fatalf("agent send: %v", goodErr)
	}
	if r := rejects.of("good"); len(r) > 0 {
		t.Errorf("the agent's reports were rejected: %v", r)
	}
	if goodChecked == 0 {
		t.Error("no closed second of the agent's was observed")
	}
	if maxHeld > bound {
		t.Errorf("%d workloads held, bound %d", maxHeld, bound)
	}
	if !overflowSeen {
		t.Errorf("the attack never reached the fleet bound (max %d held): the test proves nothing", maxHeld)
	}
	folded := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "fanout_aggregator_names_folded_total" {
			folded = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if folded == 0 {
		t.Error("fanout_aggregator_names_folded_total did not rise")
	}
	t.Logf("offered %d fresh names; folded %v; max %d workloads held (bound %d); agent seconds checked %d; hostile rejections %d",
		fresh.Load(), folded, maxHeld, bound, goodChecked, len(rejects.of("evil-0"))+len(rejects.of("evil-1")))
}
