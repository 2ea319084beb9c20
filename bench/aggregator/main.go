package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/bench/internal/aggproc"
	"github.com/fanoutdev/fanout/internal/benchmd"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
)

type config struct {
	bin       string
	out       string
	agents    int
	conns     int
	workloads int
	warmup    time.Duration
	gap       time.Duration
	surges    int
	sustain   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "aggregator-bin", "bin/fanout-aggregator", "fanout-aggregator binary to benchmark")
	flag.StringVar(&c.out, "out", "BENCHMARKS.md", "file whose \"Aggregator ingest\" section is replaced (empty: print only)")
	flag.IntVar(&c.agents, "agents", 10000, "synthetic agents (nodes)")
	flag.IntVar(&c.conns, "conns", 20, "gRPC connections the agents' streams are multiplexed over")
	flag.IntVar(&c.workloads, "workloads", 8, "DaemonSets every node runs (one pod each)")
	flag.DurationVar(&c.warmup, "warmup", 45*time.Second, "steady traffic before the first surge (baselines need 30 s)")
	flag.DurationVar(&c.gap, "gap", 25*time.Second, "time between surges")
	flag.IntVar(&c.surges, "surges", 3, "surges to inject (each on a different DaemonSet)")
	flag.DurationVar(&c.sustain, "surge-sustain", time.Second, "aggregator --killswitch.surge-sustain")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, c, logger); err != nil {
		logger.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

type surge struct {
	workload string
	onset    time.Time // start of the first surging second
	mu       sync.Mutex
	seen     []time.Duration
}

type agentState struct {
	name string
	seq  uint64
	rng  *rand.Rand
	got  map[string]bool
}

func run(ctx context.Context, c config, logger *slog.Logger) error {
	nodes := make([]string, c.agents)
	for i := range nodes {
		nodes[i] = benchNode(i)
	}
	// Capacity: steady load is 8 DaemonSets x agents x ~0.5 req/s; a surge adds ~10x one of them.
	capacity := float64(c.agents) * 6
	agg, err := aggproc.Start(ctx, aggproc.Options{Bin: c.bin, Nodes: nodes, Args: []string{
		"--apiserver.capacity-requests-per-s", fmt.Sprint(capacity),
		"--killswitch.surge-sustain", c.sustain.String(), "--killswitch.max-trips", "100", "--killswitch.min-hold", "1h",
		"--log.level", "warn", "--debug.pprof"}})
	if err != nil {
		return err
	}
	defer agg.Stop()
	pid, grpcAddr, metricsAddr := agg.PID, agg.GRPC, agg.Metrics
	logger.Info("aggregator started", "pid", pid, "grpc", grpcAddr, "args", strings.Join(agg.Args, " "))

	conns := make([]*grpc.ClientConn, c.conns)
	for i := range conns {
		conns[i], err = grpc.NewClient("passthrough:///"+grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer conns[i].Close()
	}
	workloads := make([]string, c.workloads)
	for i := range workloads {
		workloads[i] = fmt.Sprintf("DaemonSet/bench/ds-%02d", i)
	}
	surges := make([]*surge, c.surges)
	for i := range surges {
		surges[i] = &surge{workload: workloads[i%len(workloads)]}
	}
	// Align the schedule on whole seconds.
	start := time.Now().Truncate(time.Second).Add(2 * time.Second)
	for i, s := range surges {
		s.onset = start.Add(c.warmup + time.Duration(i)*c.gap)
	}
	end := start.Add(c.warmup + time.Duration(c.surges)*c.gap)
	surging := func(w string, sec time.Time) bool {
		for _, s := range surges {
			if s.workload == w && !sec.Before(s.onset) {
				return true
			}
		}
		return false
	}
	runCtx, cancel := context.WithDeadline(ctx, end.Add(3*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	var streamErrs, sendErrs, opened int64
	var emu sync.Mutex
	var lags []time.Duration
	setup := time.Now()
	// Open every agent's stream; a receiver goroutine per stream records when block directives arrive.
	type agent struct {
		*agentState
		st     api.Aggregator_ReportClient
		offset time.Duration
	}
	perConn := make([][]*agent, len(conns))
	offRNG := rand.New(rand.NewPCG(99, 1))
	for i := 0; i < c.agents; i++ {
		a := &agentState{name: benchNode(i), rng: rand.New(rand.NewPCG(uint64(i), 7)), got: map[string]bool{}}
		sctx := metadata.AppendToOutgoingContext(runCtx, "authorization", "Bearer "+aggproc.NodeToken(a.name))
		st, err := api.NewAggregatorClient(conns[i%len(conns)]).Report(sctx)
		if err != nil {
			streamErrs++
			continue
		}
		opened++
		go func() {
			for {
				set, err := st.Recv()
				if err != nil {
					return
				}
				now := time.Now()
				for _, d := range set.GetDirectives() {
					if d.GetAction() != api.Directive_ACTION_BLOCK || a.got[d.GetWorkload()] {
						continue
					}
					a.got[d.GetWorkload()] = true
					for _, s := range surges {
						if s.workload == d.GetWorkload() {
							s.mu.Lock()
							s.seen = append(s.seen, now.Sub(s.onset))
							s.mu.Unlock()
						}
					}
				}
			}
		}()
		// Each agent reports at its own offset within the second, like agents started at different times.
		perConn[i%len(conns)] = append(perConn[i%len(conns)], &agent{agentState: a, st: st, offset: time.Duration(offRNG.Int64N(int64(300 * time.Millisecond)))})
	}
	// One sender per connection walks its agents in offset order every second (a stream's sends stay on one goroutine).
	for _, agents := range perConn {
		sort.Slice(agents, func(i, j int) bool { return agents[i].offset < agents[j].offset })
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				for _, a := range agents {
					_ = a.st.CloseSend()
				}
			}()
			for sec := time.Now().Truncate(time.Second); ; sec = sec.Add(time.Second) {
				if time.Until(sec.Add(time.Second)) < -500*time.Millisecond {
					continue // starved: skip seconds rather than send a stale backlog
				}
				for _, a := range agents {
					at := sec.Add(time.Second + a.offset)
					if d := time.Until(at); d > 0 {
						select {
						case <-runCtx.Done():
							return
						case <-time.After(d):
						}
					}
					lag := time.Since(at)
					if err := a.st.Send(a.report(workloads, sec, at, surging)); err != nil {
						if runCtx.Err() == nil {
							emu.Lock()
							sendErrs++
							emu.Unlock()
						}
						return
					}
					emu.Lock()
					lags = append(lags, lag)
					emu.Unlock()
				}
				if runCtx.Err() != nil {
					return
				}
			}
		}()
	}
	logger.Info("agents started", "agents", c.agents, "conns", c.conns, "took", time.Since(setup).Round(time.Millisecond))

	// CPU and RSS over the steady part (after streams are open), sampled every second.
	time.Sleep(time.Until(start.Add(10 * time.Second)))
	first, err := aggproc.SampleProc(pid)
	if err != nil {
		return err
	}
	var maxRSS int64
	var perSec []float64
	prev := first
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		s, err := aggproc.SampleProc(pid)
		if err != nil {
			return err
		}
		perSec = append(perSec, float64(s.CPU-prev.CPU)/float64(s.At.Sub(prev.At)))
		prev = s
		maxRSS = max(maxRSS, s.RSS)
	}
	last := prev
	rejected, heap := scrape(metricsAddr)
	wg.Wait()
	logLines := agg.LogLines()
	for _, l := range logLines[max(0, len(logLines)-5):] {
		logger.Info("aggregator log", "line", l)
	}
	if b, err := os.ReadFile(agg.AuditFile); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			logger.Info("audit", "record", l)
		}
	}
	cores := float64(last.CPU-first.CPU) / float64(last.At.Sub(first.At))
	sort.Float64s(perSec)

	var all []time.Duration
	var lines []string
	for _, s := range surges {
		s.mu.Lock()
		lat := append([]time.Duration(nil), s.seen...)
		s.mu.Unlock()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		all = append(all, lat...)
		lines = append(lines, fmt.Sprintf("| %s | %d / %d | %s | %s | %s |", s.workload, len(lat), opened, aggproc.Pct(lat, 0.5), aggproc.Pct(lat, 0.99), aggproc.Pct(lat, 1)))
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	emu.Lock()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	lagText := fmt.Sprintf("client send lag behind schedule p50 %s, p99 %s (%d sends)", aggproc.Pct(lags, 0.5), aggproc.Pct(lags, 0.99), len(lags))
	emu.Unlock()
	res := result{
		cfg: c, opened: opened, streamErrs: streamErrs, sendErrs: sendErrs, cores: cores, coresP99: quant(perSec, 0.99),
		rss: maxRSS, hwm: last.HWM, p50: aggproc.Pct(all, 0.5), p99: aggproc.Pct(all, 0.99), max: aggproc.Pct(all, 1), received: len(all),
		expected: int(opened) * len(surges), surgeRows: lines, seconds: last.At.Sub(first.At), rejected: rejected, heap: heap, lag: lagText,
	}
	text := res.markdown()
	fmt.Println(text)
	if c.out != "" {
		if err := benchmd.WriteSection(c.out, "Aggregator ingest", text); err != nil {
			return err
		}
		logger.Info("wrote results", "file", c.out)
	}
	if res.received < res.expected {
		return fmt.Errorf("only %d of %d agents received the block directives", res.received, res.expected)
	}
	return nil
}

func benchNode(i int) string { return fmt.Sprintf("bench-node-%05d", i) }

func (a *agentState) report(workloads []string, sec, sentAt time.Time, surging func(string, time.Time) bool) *api.NodeReport {
	a.seq++
	r := &api.NodeReport{Node: a.name, Sequence: a.seq, Timestamp: timestamppb.New(sec.Add(time.Second)), Interval: durationpb.New(time.Second),
		Health: &api.AgentHealth{ProbesAttached: true, Version: "bench"}}
	_ = sentAt
	for i, w := range workloads {
		mean := 0.5
		if surging(w, sec) {
			mean = 5
		}
		req := uint64(poisson(a.rng, mean))
		delta := &api.Counters{Requests: req, RxBytes: req * 4000, TxBytes: req * 350}
		r.Pods = append(r.Pods, &api.PodDelta{Uid: fmt.Sprintf("%s-%02d", a.name, i), Namespace: "bench", Name: fmt.Sprintf("ds-%02d-%s", i, a.name), Workload: w, Delta: delta})
		r.Workloads = append(r.Workloads, &api.WorkloadDelta{Workload: w, Delta: delta, Pods: 1})
	}
	return r
}

func poisson(rng *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, rng.Float64()
	for p > l {
		k++
		p *= rng.Float64()
	}
	return k
}

func quant(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	i := min(max(int(q*float64(len(v))+0.5)-1, 0), len(v)-1)
	return v[i]
}

type result struct {
	cfg                  config
	opened               int64
	streamErrs, sendErrs int64
	cores, coresP99      float64
	rss, hwm             int64
	p50, p99, max        time.Duration
	received, expected   int
	surgeRows            []string
	rejected, heap, lag  string
	seconds              time.Duration
}

func (r result) markdown() string {
	host, _ := os.Hostname()
	var b strings.Builder
	fmt.Fprintf(&b, "## Aggregator ingest\n\n")
	fmt.Fprintf(&b, "`make bench-aggregator` (bench/aggregator), %s, %s, %d CPUs (shared with other work), %s/%s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "%d synthetic agents, each a real gRPC report stream (multiplexed over %d loopback connections) to the real\n", r.opened, r.cfg.conns)
	fmt.Fprintf(&b, "`fanout-aggregator` binary, one report per agent per second (%d DaemonSet pods per node, per-pod and per-workload deltas),\n", r.cfg.workloads)
	fmt.Fprintf(&b, "%d synchronized surges (one DaemonSet at 10x on every node), aggregator run with `--killswitch.surge-sustain=%s`\n", r.cfg.surges, r.cfg.sustain)
	fmt.Fprintf(&b, "(decide on the first closed window that shows the surge; the default 3s adds 2 s of deliberate policy delay).\n")
	fmt.Fprintf(&b, "Stream errors: %d open, %d send. Aggregator counters at the end: %s; %s; %s.\n\n", r.streamErrs, r.sendErrs, r.rejected, r.heap, r.lag)
	fmt.Fprintf(&b, "| metric | result | goal |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| aggregator CPU, mean over %s steady ingest | %.2f cores (p99 of 1 s samples %.2f) | <= 1 core |\n", r.seconds.Round(time.Second), r.cores, r.coresP99)
	fmt.Fprintf(&b, "| aggregator RSS, max sampled (VmHWM) | %.0f MiB (%.0f MiB) | <= 512 MiB |\n", float64(r.rss)/(1<<20), float64(r.hwm)/(1<<20))
	fmt.Fprintf(&b, "| onset -> block directive at the agent, p50 | %s | |\n", r.p50)
	fmt.Fprintf(&b, "| onset -> block directive at the agent, p99 | %s | <= 3 s |\n", r.p99)
	fmt.Fprintf(&b, "| onset -> block directive at the agent, max | %s | |\n", r.max)
	fmt.Fprintf(&b, "| agents that received each block | %d of %d | all |\n\n", r.received, r.expected)
	fmt.Fprintf(&b, "Onset = start of the first second whose counters carry the surge; the agent reports that second when it ends\n")
	fmt.Fprintf(&b, "(plus its own 0-300 ms offset), the aggregator closes the window after its 1 s grace, decides, and pushes the\n")
	fmt.Fprintf(&b, "directive set to all streams.\n\n")
	fmt.Fprintf(&b, "| surge | agents reached | p50 | p99 | max |\n|---|---|---|---|---|\n")
	for _, l := range r.surgeRows {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// scrape reads the aggregator's report counters and Go heap from /metrics.
func scrape(addr string) (string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := aggproc.Scrape(ctx, addr)
	if err != nil {
		return "metrics unavailable: " + err.Error(), ""
	}
	rej := []string{fmt.Sprintf("reports_total %g", m["fanout_aggregator_reports_total"])}
	byReason := m.ByLabel("fanout_aggregator_reports_rejected_total")
	for _, r := range aggproc.Keys(byReason) {
		if v := byReason[r]; v != 0 {
			rej = append(rej, fmt.Sprintf(`{reason="%s"} %g`, r, v))
		}
	}
	if len(rej) == 1 {
		rej = append(rej, "no rejections")
	}
	heap := ""
	if v, ok := m["go_memstats_heap_inuse_bytes"]; ok {
		heap = fmt.Sprintf("Go heap in use %.0f MiB", v/(1<<20))
	}
	return strings.Join(rej, ", "), heap
}
