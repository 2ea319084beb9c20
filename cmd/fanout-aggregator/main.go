// Command fanout-aggregator ingests every node's one-second reports over gRPC, detects workloads whose API-server
// traffic surges fleet-wide or is projected to overload the API server, and streams kill-switch directives back to
// the agents. Run several replicas: they decide independently and deterministically from the same reports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/fanoutdev/fanout/aggregator/audit"
	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/metrics"
	"github.com/fanoutdev/fanout/aggregator/server"
	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/internal/cliflag"
	"github.com/fanoutdev/fanout/internal/profiling"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// Config is the aggregator's configuration, from flags.
type Config struct {
	Listen         string
	MetricsListen  string
	Replica        string
	AgentTokenFile string
	AdminTokenFile string
	TLSCert        string
	TLSKey         string
	TLSClientCA    string
	TLSRequireCert bool // every connection must present a client certificate
	Insecure       bool // accept bearer tokens over plaintext gRPC
	AuditFile      string
	StateFile      string
	SyncWait       time.Duration
	Grace          time.Duration
	Refresh        time.Duration
	LogLevel       string
	ConfigCheck    bool
	Pprof          bool
	MemoryLimit    int64
	Engine         engine.Config
	Metrics        metrics.Config
	Profiling      profiling.Config
	Remediation    RemediationConfig
	Headroom       HeadroomConfig
}

const aggregatorSynopsis = `usage: fanout-aggregator [flags]

The fleet side: ingests the agents' per-second reports, detects synchronized surges and projected API server
overload per workload, runs the kill-switch state machine, audits every decision and sends directives to the agents.`

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	host, _ := os.Hostname()
	cfg := Config{Engine: engine.DefaultConfig(), Metrics: metrics.DefaultConfig()}
	fs := flag.NewFlagSet("fanout-aggregator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:7443", "gRPC listen address for agents and fanoutctl")
	fs.StringVar(&cfg.MetricsListen, "metrics.listen", "127.0.0.1:9464", "HTTP listen address for /metrics (empty: off)")
	fs.StringVar(&cfg.Listen, "grpc.listen-address", "127.0.0.1:7443", "alias of --listen")
	fs.StringVar(&cfg.MetricsListen, "web.listen-address", "127.0.0.1:9464", "alias of --metrics.listen")
	fs.StringVar(&cfg.Replica, "replica", host, "replica name, sent with every directive set")
	fs.StringVar(&cfg.AgentTokenFile, "auth.agent-token-file", "", `agent tokens, one "TOKEN NODE" per line (one node per token)`)
	fs.StringVar(&cfg.AdminTokenFile, "auth.admin-token-file", "", "admin tokens for manual trip/release, one per line")
	cfg.registerTLSFlags(fs)
	fs.StringVar(&cfg.AuditFile, "audit.file", "", "append every decision with its evidence to this JSON-lines file (default: stderr log only)")
	fs.StringVar(&cfg.StateFile, "state.file", "", "keep the kill switch's trips in this file and restore them at start (a restart never releases a trip)")
	fs.DurationVar(&cfg.SyncWait, "state.sync-wait", 5*time.Second, "after a start, collect the agents' reported blocks this long before tripping or releasing anything")
	fs.DurationVar(&cfg.Grace, "window.grace", time.Second, "how long a second stays open for late reports")
	fs.DurationVar(&cfg.Refresh, "directives.refresh", 10*time.Second, "re-send the directive set this often")
	fs.StringVar(&cfg.LogLevel, "log.level", "info", "debug, info, warn or error")
	fs.Int64Var(&cfg.MemoryLimit, "memory.limit-mib", 400, "Go soft memory limit in MiB (GC works harder near it; 0: GOMEMLIMIT/unlimited)")
	fs.BoolVar(&cfg.Pprof, "debug.pprof", false, "serve /debug/pprof/ on the metrics listener")
	fs.BoolVar(&cfg.ConfigCheck, "config.check", false, "validate the configuration (flags, token and TLS files) and exit")
	cfg.Engine.Fleet.RegisterFlags(fs)
	cfg.Engine.Detect.RegisterFlags(fs)
	cfg.Engine.Switch.RegisterFlags(fs)
	cfg.Metrics.RegisterFlags(fs)
	cfg.Remediation.registerFlags(fs)
	cfg.Headroom.registerFlags(fs)
	cfg.Profiling.RegisterFlags(fs)
	if err := cliflag.Parse(fs, args, aggregatorSynopsis, os.Stdout); err != nil {
		return cfg, err // flag.ErrHelp after --help (exit 0), else a one-line *cliflag.UsageError
	}
	if fs.NArg() > 0 {
		return cfg, cliflag.Usagef(fs.Name(), "unexpected arguments %q (the aggregator takes flags only)", fs.Args())
	}
	if err := cfg.Engine.Switch.Validate(); err != nil {
		return cfg, err
	}
	if err := cfg.Metrics.Validate(); err != nil {
		return cfg, err
	}
	if cfg.AgentTokenFile == "" && cfg.TLSClientCA == "" {
		return cfg, errors.New("agents must authenticate: set --auth.agent-token-file and/or --tls.client-ca")
	}
	if err := cfg.checkTransport(); err != nil {
		return cfg, err
	}
	return cfg, cfg.Headroom.validate()
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "fanout-aggregator: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "fanout-aggregator: --log.level: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})).With("replica", cfg.Replica)
	if err := serve(ctx, cfg, logger); err != nil {
		logger.Error("aggregator failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg Config, logger *slog.Logger) error {
	var scfg = server.Config{Replica: cfg.Replica, Grace: cfg.Grace, Refresh: cfg.Refresh, AllowCertAuth: cfg.TLSClientCA != ""}
	var err error
	if cfg.AgentTokenFile != "" {
		if scfg.AgentTokens, err = server.LoadAgentTokens(cfg.AgentTokenFile); err != nil {
			return err
		}
	}
	if cfg.AdminTokenFile != "" {
		if scfg.AdminTokens, err = server.LoadAdminTokens(cfg.AdminTokenFile); err != nil {
			return err
		}
	}
	tc, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	cfg.warnInsecure(logger)
	if cfg.ConfigCheck {
		logger.Info("configuration ok")
		return nil
	}
	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit << 20)
	}
	stopProf, err := profiling.Start(ctx, withApp(cfg.Profiling, cfg.Replica), logger)
	if err != nil {
		return fmt.Errorf("start profiling: %w", err)
	}
	defer func() { _ = stopProf() }()

	var sink engine.Sink
	auditOut := io.Writer(io.Discard)
	if cfg.AuditFile != "" {
		f, err := os.OpenFile(cfg.AuditFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("open audit file: %w", err)
		}
		defer f.Close()
		auditOut = f
	}
	sink = audit.New(auditOut, cfg.Replica, nil, logger)
	eng := engine.New(cfg.Engine, sink)
	// Rebuild the trip state before anything can be released: the state file now, the agents' blocks during SyncWait.
	if cfg.StateFile != "" {
		trips, err := loadState(cfg.StateFile)
		if err != nil {
			return err
		}
		logger.Info("kill-switch state restored", "file", cfg.StateFile, "trips", eng.Restore(trips))
		go keepState(ctx, cfg.StateFile, eng, logger)
	}
	eng.BeginSync(time.Now().Add(cfg.SyncWait).Unix())

	reg := prometheus.NewRegistry()
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fanout_build_info", Help: "fanout build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	hsrc, err := newHeadroomSource(cfg.Headroom, cfg.Remediation.Kubeconfig, logger)
	if err != nil {
		return err
	}
	hsources := metrics.HeadroomSources{Estimate: eng.Headroom}
	if hsrc != nil {
		hsources.Scrapes = hsrc.Status
	}
	if cfg.Headroom.PlacementWatch {
		pw, err := startPlacement(ctx, cfg.Remediation.Kubeconfig, eng, logger)
		if err != nil {
			return err
		}
		hsources.Placement = pw.Stats
	}
	for _, c := range []prometheus.Collector{build, metrics.New(eng, cfg.Metrics), metrics.NewHeadroom(hsources), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	srv, err := server.New(scfg, eng, reg, logger)
	if err != nil {
		return err
	}
	opts := []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(100_000),
	}
	if tc != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	gs := grpc.NewServer(opts...)
	api.RegisterAggregatorServer(gs, srv)
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	logger.Info("aggregator listening", "grpc", lis.Addr().String(), "metrics", cfg.MetricsListen, "dry_run", cfg.Engine.Switch.DryRun, "version", version)

	errc := make(chan error, 4)
	go func() { errc <- srv.Run(ctx) }()
	hctx, hstop := context.WithCancel(ctx)
	hdone := make(chan struct{})
	go func() { defer close(hdone); runHeadroom(hctx, cfg.Headroom, hsrc, eng, logger) }()
	defer func() { hstop(); <-hdone }() // the learned headroom is saved on the way out
	if cfg.Remediation.After > 0 {
		go func() {
			if err := runRemediation(ctx, cfg.Remediation, cfg.Engine.Switch.Protected, eng, logger); err != nil {
				errc <- err
			}
		}()
	}
	go func() { errc <- gs.Serve(lis) }()
	var hs *http.Server
	if cfg.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		if cfg.Pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		}
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		hs = &http.Server{Addr: cfg.MetricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		mlis, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			gs.Stop()
			return fmt.Errorf("listen metrics %s: %w", cfg.MetricsListen, err)
		}
		logger.Info("metrics listening", "addr", mlis.Addr().String())
		go func() {
			if err := hs.Serve(mlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve metrics: %w", err)
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	logger.Info("shutting down")
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}
	return runErr
}

func withApp(c profiling.Config, replica string) profiling.Config {
	c.AppName = "fanout-aggregator"
	if c.Tags == nil {
		c.Tags = map[string]string{}
	}
	c.Tags["replica"] = replica
	return c
}
