package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/bench/internal/aggproc"
	"github.com/fanoutdev/fanout/internal/benchmd"
)

type config struct {
	bin           string
	out           string
	attackers     int
	names         int
	warmup        time.Duration
	attack        time.Duration
	reconnect     time.Duration
	cooldown      time.Duration
	maxRSSMiB     int64
	maxScrape     time.Duration
	scrapeTimeout time.Duration
	agentOffset   time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "aggregator-bin", "bin/fanout-aggregator", "fanout-aggregator binary to benchmark")
	flag.StringVar(&c.out, "out", "BENCHMARKS.md", "file whose \"Cardinality attack\" section is replaced (empty: print only)")
	flag.IntVar(&c.attackers, "attackers", 3, "attacker nodes, each with its own credential")
	flag.IntVar(&c.names, "names", 10_000, "fresh workload names and fresh pods per hostile report")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "the agent alone before the attack")
	flag.DurationVar(&c.attack, "attack", 40*time.Second, "attack duration")
	flag.DurationVar(&c.reconnect, "reconnect", 3*time.Second, "attackers open a new connection and stream this often")
	flag.DurationVar(&c.cooldown, "cooldown", 10*time.Second, "time after the attack before the final RSS reading")
	flag.Int64Var(&c.maxRSSMiB, "max-rss-mib", 512, "fail when the aggregator's RSS exceeds this")
	flag.DurationVar(&c.maxScrape, "max-scrape", 2*time.Second, "fail when a /metrics scrape takes longer")
	flag.DurationVar(&c.scrapeTimeout, "scrape-timeout", 5*time.Second, "/metrics client timeout")
	flag.DurationVar(&c.agentOffset, "agent-offset", 600*time.Millisecond, "the agent reports this long after each second ends (the attackers send at 200-500 ms)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "bench-attack")
	if err := run(ctx, c, logger); err != nil {
		logger.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

func attackerNode(i int) string { return fmt.Sprintf("evil-%d", i) }

func run(ctx context.Context, c config, logger *slog.Logger) error {
	if c.reconnect < time.Second || c.attackers < 1 || c.names < 1 {
		return fmt.Errorf("want -reconnect >= 1s (one report round a second), -attackers >= 1, -names >= 1")
	}
	load := loadAvg()
	nodes := []string{goodNode}
	for i := range c.attackers {
		nodes = append(nodes, attackerNode(i))
	}
	// Debug logging: the one debug record is "report rejected", with the node; it tells the agent's rejections apart.
	agg, err := aggproc.Start(ctx, aggproc.Options{Bin: c.bin, Nodes: nodes, Admin: true, Args: []string{"--log.level", "debug"}})
	if err != nil {
		return err
	}
	defer agg.Stop()
	logger.Info("aggregator started", "pid", agg.PID, "grpc", agg.GRPC, "metrics", agg.Metrics)
	conn, err := grpc.NewClient("passthrough:///"+agg.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial aggregator: %w", err)
	}
	defer conn.Close()
	client := api.NewAggregatorClient(conn)

	w := &watch{}
	a := &agent{sent: map[int64]bool{}, offset: c.agentOffset}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	var watchers sync.WaitGroup
	watchers.Go(func() { every(wctx, 250*time.Millisecond, func() { w.sampleRSS(agg) }) })
	watchers.Go(func() { every(wctx, 500*time.Millisecond, func() { w.scrape(wctx, agg.Metrics, c.scrapeTimeout) }) })
	watchers.Go(func() { every(wctx, 2*time.Second, func() { w.status(wctx, client, a) }) })
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); a.run(actx, client) }()

	if err := sleep(ctx, c.warmup); err != nil {
		return err
	}
	before, err := snapshot(ctx, agg.Metrics)
	if err != nil {
		return err
	}
	cpu0, err := agg.Sample()
	if err != nil {
		return err
	}
	logger.Info("attack", "attackers", c.attackers, "names", c.names, "for", c.attack, "reconnect", c.reconnect)
	stats := &attackStats{sent: map[string]int{}}
	attackStart := time.Now()
	end := attackStart.Add(c.attack)
	var attackers sync.WaitGroup
	for i := range c.attackers {
		h := newHostile(attackerNode(i), c.names)
		offset := 200*time.Millisecond + time.Duration(i)*150*time.Millisecond
		attackers.Go(func() { attack(ctx, agg.GRPC, h, end, c.reconnect, offset, stats) })
	}
	attackers.Wait()
	attackEnd := time.Now()
	cpu1, err := agg.Sample()
	if err != nil {
		return err
	}
	logger.Info("attack over; cooling down", "for", c.cooldown)
	if err := sleep(ctx, c.cooldown); err != nil {
		return err
	}
	final, err := agg.Sample()
	if err != nil {
		return err
	}
	after, err := snapshot(ctx, agg.Metrics)
	if err != nil {
		return err
	}
	acancel()
	<-agentDone
	wcancel()
	watchers.Wait()
	time.Sleep(200 * time.Millisecond) // the agent's last report reaches the log

	res := analyze(c, w, a, stats, agg.LogLines(), before, after, attackStart, attackEnd)
	res.loadBefore = load
	res.cores = float64(cpu1.CPU-cpu0.CPU) / float64(cpu1.At.Sub(cpu0.At))
	res.rssEnd, res.hwm = final.RSS, final.HWM
	res.peakRSS = max(res.peakRSS, final.RSS)
	text := res.markdown()
	fmt.Println(text)
	if c.out != "" {
		if err := benchmd.WriteSection(c.out, "Cardinality attack", text); err != nil {
			return err
		}
		logger.Info("wrote results", "file", c.out)
	}
	if fails := res.failures(); len(fails) > 0 {
		return errors.New("bounds broken: " + fmt.Sprint(fails))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func snapshot(ctx context.Context, addr string) (aggproc.Metrics, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := aggproc.Scrape(sctx, addr)
	if err != nil {
		return nil, fmt.Errorf("read aggregator counters: %w", err)
	}
	return m, nil
}
