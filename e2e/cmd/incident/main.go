// Command incident replays the fleet incident on a real kube-apiserver with a simulated fleet and no fanout: the
// unprotected baseline the demo compares against, and the tool to calibrate load on a given machine. It prints a live
// account and a summary, and writes the HTML report.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/incident"
	"github.com/fanoutdev/fanout/e2e/report"
)

func main() {
	var cfg incident.Config
	flag.IntVar(&cfg.Nodes, "nodes", 4, "simulated nodes")
	flag.IntVar(&cfg.SeedPods, "seed-pods", 2000, "pods seeded so cluster-wide LISTs are expensive")
	flag.Float64Var(&cfg.SystemRate, "system-rate", 2, "GETs/s per kube-proxy pod (node-problem-detector: half)")
	flag.IntVar(&cfg.TelemetryWorkers, "telemetry-workers", 8, "cluster-wide LIST loops per telemetry pod")
	useKubectl := flag.Bool("kubectl", false, "the telemetry pods run a real kubectl (built from the module proxy) instead of podload's LISTs")
	flag.IntVar(&cfg.KubectlLoops, "kubectl-loops", 4, "loops of `kubectl get pods -A -o json` per telemetry pod")
	flag.StringVar(&cfg.ResourceVersion, "resource-version", "", `telemetry LIST resourceVersion: "" or "0"`)
	flag.DurationVar(&cfg.Baseline, "baseline", 20*time.Second, "healthy period before the rollout")
	flag.DurationVar(&cfg.Rollout, "rollout", 5*time.Second, "telemetry rollout spread")
	flag.DurationVar(&cfg.Incident, "incident", 40*time.Second, "incident length after the rollout")
	flag.DurationVar(&cfg.Recovery, "recovery", 20*time.Second, "time after the incident window")
	flag.StringVar(&cfg.WorkDir, "workdir", "", "keep logs, kubeconfigs and the audit log here (temp dir when empty)")
	out := flag.String("report", "incident-report.html", "HTML report path")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.Logger, cfg.Live = logger, os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *useKubectl {
		bin, err := harness.EnsureKubectl(ctx, logger)
		if err != nil {
			logger.Error("kubectl", "err", err)
			os.Exit(1)
		}
		cfg.KubectlBin = bin
	}
	res, err := incident.Run(ctx, cfg)
	if err != nil {
		logger.Error("incident run failed", "err", err)
		os.Exit(1)
	}
	res.WriteSummary(os.Stdout)
	f, err := os.Create(*out)
	if err != nil {
		logger.Error("create report", "err", err)
		os.Exit(1)
	}
	defer f.Close()
	if err := report.Write(f, res.Report("fanout e2e: the incident, unprotected")); err != nil {
		logger.Error("write report", "err", err)
		os.Exit(1)
	}
	fmt.Printf("report: %s\n", *out)
}
