// Command fanout-agent is fanout's node agent (a DaemonSet): it counts every pod's API-server traffic in the
// kernel, attributes it to pods and workloads, exports Prometheus metrics and produces per-second snapshots for the
// aggregator.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/collector/agent"
	"github.com/fanoutdev/fanout/collector/apiendpoints"
	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/identity"
	"github.com/fanoutdev/fanout/collector/kubeclient"
	"github.com/fanoutdev/fanout/collector/metrics"
	"github.com/fanoutdev/fanout/collector/pindir"
	"github.com/fanoutdev/fanout/collector/probe"
	"github.com/fanoutdev/fanout/collector/report"
	"github.com/fanoutdev/fanout/collector/uplink"
	"github.com/fanoutdev/fanout/internal/memtrim"
	"github.com/fanoutdev/fanout/internal/profiling"
)

var version = "dev"

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return // --help printed the flags: exit 0, as every fanout command
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanout-agent:", err)
		os.Exit(2)
	}
	if cfg.ConfigCheck {
		fmt.Println("configuration ok")
		return
	}
	logger := newLogger(cfg.LogLevel)
	klog.SetSlogLogger(logger.With("component", "client-go"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("agent failed", "err", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func run(ctx context.Context, cfg *config, logger *slog.Logger) error {
	if cfg.Uninstall {
		if err := pindir.Uninstall(cfg.PinDir); err != nil {
			return fmt.Errorf("uninstall: %w", err)
		}
		logger.Info("instance uninstalled", "pin_dir", cfg.PinDir)
		return nil
	}
	if cfg.PageOutAfter > 0 {
		// The package initialisers (client-go's scheme registers every API group's types) touched code and tables
		// the agent will not run again: give them back before start-up adds its own, so the peak stays low too.
		if _, err := memtrim.PageOutSelf(); err != nil {
			logger.Debug("initialisers' pages not given back", "err", err)
		}
	}
	stopProfiling, err := profiling.Start(ctx, cfg.Profiling, logger)
	if err != nil {
		return err
	}
	defer stopProfiling()

	mount, err := cgroups.Cgroup2Mount()
	if err != nil {
		return err
	}
	root := cfg.CgroupRoot
	if root == "" {
		if root, err = cgroups.PodsCgroup(mount); err != nil {
			return err
		}
	}
	client, err := kubeclient.New(cfg.Kubeconfig, "fanout-agent/"+version)
	if err != nil {
		logger.Warn("no API server client; identities come from the pod log dir", "err", err)
	}
	p, err := probe.New(probe.Config{PinDir: cfg.PinDir, CgroupPath: root,
		MaxCgroups: counterMapSize(ctx, cfg.MaxCgroups, client, cfg.NodeName, logger),
		APISlots:   uint32(cfg.APISlots),
		Mode:       cfg.ProbeMode}, logger)
	if err != nil {
		return fmt.Errorf("start probe: %w", err)
	}
	defer p.Close() // pins stay: counting and blocking continue while the agent restarts
	logger.Info("probe attached", "cgroup", root, "pin_dir", cfg.PinDir, "mode", p.Mode())

	// API-server endpoints: the static seed (flags, in-cluster env) at once, then the default/kubernetes Service and
	// its EndpointSlices as they change. Without an API server the seed (and whatever is pinned) stays in force.
	seed := make([]apiendpoints.Endpoint, 0, len(cfg.endpoints))
	for _, e := range cfg.endpoints {
		seed = append(seed, apiendpoints.Endpoint(e))
	}
	if env, err := apiendpoints.FromEnv(os.LookupEnv); err != nil {
		logger.Warn("ignoring in-cluster API address from the environment", "err", err)
	} else {
		seed = append(seed, env...)
	}
	var discoveryClient kubeclient.Client
	if cfg.DiscoverEndpoints && client != nil {
		discoveryClient = client
	}
	endpoints, err := apiendpoints.New(apiendpoints.Config{Client: discoveryClient, Static: seed,
		StartJitter: cfg.InformerJitter, Logger: logger, OnChange: func(eps []apiendpoints.Endpoint) {
			if len(eps) == 0 {
				// Nothing known yet (no seed, API server not reached): keep the pinned set of the previous run, so
				// counting and blocking go on across a restart during an outage.
				logger.Warn("no API endpoints known; keeping the pinned endpoint set")
				return
			}
			set := make([]probe.Endpoint, 0, len(eps))
			for _, e := range eps {
				set = append(set, probe.Endpoint(e))
			}
			if err := p.SetEndpoints(set); err != nil {
				logger.Error("update API endpoint map", "err", err)
				return
			}
			logger.Info("API endpoints", "count", len(set))
		}})
	if err != nil {
		return fmt.Errorf("endpoint discovery: %w", err)
	}
	ids := identity.New(identity.Config{NodeName: cfg.NodeName, Client: client, PodLogsDir: cfg.PodLogsDir,
		StartJitter: cfg.InformerJitter}, logger)
	ag := agent.New(agent.Config{NodeName: cfg.NodeName, Interval: cfg.Interval}, p,
		cgroups.NewResolver(mount, root), ids, logger)

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.New(ag, logger), metrics.NewProbeCollector(ag, logger), metrics.BuildInfo(version),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The kill switch works from pinned state and the cgroup tree alone: no API server, no aggregator needed to
	// keep enforcing (fail-static until each block's TTL).
	var enf *enforce.Enforcer
	if cfg.Enforce {
		ecfg := cfg.EnforceConfig
		ecfg.PinDir, ecfg.PodsCgroup, ecfg.Node = cfg.PinDir, root, cfg.NodeName
		enf, err = enforce.New(ecfg, enforce.Deps{Workloads: enforce.WorkloadFunc(func(uid string) (string, bool) {
			id, ok := ids.PodByUID(uid)
			return id.Workload, ok
		})}, logger)
		if err != nil {
			return fmt.Errorf("start kill switch: %w", err)
		}
		defer enf.Close() // pins stay: blocks hold while the agent restarts
		ids.OnPodAdd(func(p identity.PodIdentity) { enf.PodAdded(p.UID) })
		reg.MustRegister(enf)
	}
	var up *uplink.Uplink
	if enf != nil {
		up = uplink.New(enf, version, logger)
	} else {
		up = uplink.New(nil, version, logger) // a nil *Enforcer must not become a non-nil interface
	}
	var reporter *report.Client
	if len(cfg.Report.Addresses) > 0 {
		if reporter, err = report.New(cfg.Report, up.HandleDirective, reg, logger); err != nil {
			return fmt.Errorf("start reporter: %w", err)
		}
	}
	mux := http.NewServeMux()
	// ContinueOnError: one failing collector must not take every other metric (the kill switch's) dark.
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if last := ag.LastTick(); time.Since(last) > 5*cfg.Interval+time.Second {
			http.Error(w, fmt.Sprintf("counters not read since %s", last.Format(time.RFC3339)), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: cfg.ListenAddress, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	errc := make(chan error, 6)
	go func() { errc <- endpoints.Run(ctx) }()
	go func() { errc <- ids.Run(ctx) }()
	go func() { errc <- ag.Run(ctx) }()
	if enf != nil {
		go func() { errc <- enf.Run(ctx) }()
	}
	go func() {
		logger.Info("serving metrics", "address", cfg.ListenAddress)
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve metrics: %w", err)
		}
	}()
	if reporter != nil {
		go func() { errc <- reporter.Run(ctx) }()
		go up.Forward(ctx, ag.Snapshots(), reporter.Submit, func() *api.AgentHealth { return health(ag) })
		logger.Info("reporting to aggregators", "addresses", cfg.Report.Addresses, "merge", cfg.Report.Merge)
	} else {
		go logSnapshots(ctx, ag.Snapshots(), logger)
	}

	if cfg.PageOutAfter > 0 {
		go pageOutStartup(ctx, cfg.PageOutAfter, logger)
	}

	var runErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case runErr = <-errc:
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("http shutdown", "err", err)
	}
	return runErr
}

// health summarizes the agent's own state for its reports.
func health(ag *agent.Agent) *api.AgentHealth {
	h := &api.AgentHealth{ProbesAttached: true, Version: version}
	if st, err := ag.MetricsState(context.Background()); err == nil {
		h.UnknownCgroups = uint32(st.UnknownCgroups)
		for _, m := range st.Maps {
			h.MapFullTotal += m.FullTotal
		}
	}
	return h
}

// pageOutStartup waits d, then pages out the agent binary's read-only mappings once (internal/memtrim): the code and
// tables only start-up used stop counting against the node's memory; what the agent still runs comes back on demand.
func pageOutStartup(ctx context.Context, d time.Duration, logger *slog.Logger) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(d):
	}
	before := vmRSS()
	n, err := memtrim.PageOutSelf()
	if err != nil {
		logger.Info("start-up pages not given back", "err", err)
		return
	}
	logger.Info("start-up pages of the binary given back", "advised_bytes", n, "rss_before_bytes", before, "rss_after_bytes", vmRSS())
}

// vmRSS is the process's resident set in bytes (0 when unreadable).
func vmRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// logSnapshots consumes the snapshot stream (until the aggregator reporter is plugged in) and logs it at debug.
func logSnapshots(ctx context.Context, ch <-chan agent.Snapshot, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-ch:
			for _, w := range s.Workloads {
				logger.Debug("workload api traffic", "seq", s.Seq, "workload", w.Workload, "pods", w.Pods,
					"connects", w.Connects, "requests", w.Requests, "tx_bytes", w.TxBytes, "rx_bytes", w.RxBytes)
			}
		}
	}
}
