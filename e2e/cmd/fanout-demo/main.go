// Command fanout-demo is `make demo`: on this machine, a real kube-apiserver and a simulated fleet (real cgroups, real
// client-go pods, one real fanout-agent per node, one fanout-aggregator) replay the incident twice, first with fanout
// in dry-run (it decides and audits but blocks nothing: the incident hurts) and then armed (the telemetry DaemonSet is
// cut off on every node). In both runs the operator then rolls the DaemonSet back to a cheap config (its pods replaced
// by light-GET ones, which fanout keeps blocked while the trip holds) and releases it by hand with `fanoutctl release`:
// the agents re-admit the pods in steps (per-node jitter of the aggregator's ramp), with no recovery herd. It prints a live account and a final summary, and writes a
// self-contained HTML report with the plots of both runs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/e2e/fanoutguard"
	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/incident"
	"github.com/fanoutdev/fanout/e2e/report"
)

// defaultAggregatorArgs suit a 4-node fleet. No capacity is told: the aggregator learns the API server's headroom from
// its /metrics (read as a normal token user that RBAC allows to GET /metrics) and from the load the agents measure.
// The incident lasts 45 s, so the API server is read every 2 s (default 5 s) and an overload must last 3 s (default
// 30 s) before its top contributor trips.
const defaultAggregatorArgs = "--headroom.apiserver-url={apiserver} --headroom.token-file={apiserver-token} --headroom.ca-file={apiserver-ca} " +
	"--headroom.interval=2s --placement.watch --kubeconfig={kubeconfig} " +
	"--fleet.warmup=5s --killswitch.overload-sustain=3s --killswitch.min-hold=60s " +
	"--killswitch.ramp-duration=20s --killswitch.ramp-steps=4 " +
	"--killswitch.protected=DaemonSet/kube-system/kube-proxy,DaemonSet/kube-system/node-problem-detector"

func main() {
	var cfg incident.Config
	flag.IntVar(&cfg.Nodes, "nodes", 4, "simulated nodes (one fanout-agent each)")
	flag.IntVar(&cfg.SeedPods, "seed-pods", 2000, "pods seeded so cluster-wide LISTs are expensive")
	flag.IntVar(&cfg.TelemetryWorkers, "telemetry-workers", 8, "cluster-wide LIST loops per telemetry pod (with --kubectl=false)")
	useKubectl := flag.Bool("kubectl", true, "the telemetry pods run a real kubectl (built from the module proxy at the API server's version)")
	flag.IntVar(&cfg.KubectlLoops, "kubectl-loops", 12, "loops of `kubectl get pods -A -o json` per telemetry pod")
	flag.DurationVar(&cfg.Baseline, "baseline", 20*time.Second, "healthy period before the telemetry rollout")
	flag.DurationVar(&cfg.Rollout, "rollout", 5*time.Second, "telemetry rollout spread")
	flag.DurationVar(&cfg.Incident, "incident", 40*time.Second, "incident window after the rollout")
	flag.DurationVar(&cfg.Recovery, "recovery", 40*time.Second, "time after the incident window (rollback, release ramp, herd check)")
	flag.BoolVar(&cfg.Rollback, "rollback", true, "roll the telemetry DaemonSet back to light GETs at the end of the incident window")
	flag.Float64Var(&cfg.LightRate, "light-rate", 5, "GETs/s of each rolled-back telemetry pod")
	flag.DurationVar(&cfg.ReleaseAfter, "release-after", 5*time.Second, "operator's fanoutctl release this long after the rollback (0: none)")
	aggArgs := flag.String("aggregator-args", defaultAggregatorArgs, "extra fanout-aggregator flags ({apiserver}, {apiserver-token}, {apiserver-ca} and {kubeconfig} are substituted)")
	agentAgg := flag.String("agent-aggregator-args", "--aggregator.address={addr} --aggregator.token-file={token}",
		"fanout-agent flags that connect it to the aggregator ({addr}, {token} and {node} are substituted)")
	out := flag.String("report", "fanout-demo-report.html", "HTML report path")
	workDir := flag.String("workdir", "", "keep logs, kubeconfigs, audit logs here (temp dir when empty)")
	skipDry := flag.Bool("skip-dry-run", false, "only the armed run")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, *useKubectl, *aggArgs, *agentAgg, *out, *workDir, *skipDry, logger); err != nil {
		logger.Error("demo failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg incident.Config, useKubectl bool, aggArgs, agentAgg, out, workDir string, skipDry bool, logger *slog.Logger) error {
	fmt.Println("== fanout demo: building the control plane and kubectl (cached after the first run) and fanout")
	if _, err := harness.EnsureBinaries(ctx, logger); err != nil {
		return err
	}
	if useKubectl {
		bin, err := harness.EnsureKubectl(ctx, logger)
		if err != nil {
			return err
		}
		cfg.KubectlBin = bin
	}
	tmp, err := os.MkdirTemp("", "fanout-demo-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	agentBin, aggBin, err := fanoutguard.Build(ctx, tmp)
	if err != nil {
		return err
	}
	ctlBin, err := fanoutguard.BuildFanoutctl(ctx, tmp)
	if err != nil {
		return err
	}
	cfg.Live, cfg.Logger = os.Stdout, logger
	var runs []incident.Labeled
	modes := []struct {
		label string
		dry   bool
	}{{"dry-run", true}, {"armed", false}}
	if skipDry {
		modes = modes[1:]
	}
	for _, m := range modes {
		fmt.Printf("\n== run %q: fanout %s\n", m.label, map[bool]string{true: "decides and audits, blocks nothing", false: "armed"}[m.dry])
		c := cfg
		c.Mode = m.label
		if workDir != "" {
			c.WorkDir = filepath.Join(workDir, m.label)
		}
		c.Guard = fanoutguard.New(fanoutguard.Config{
			AgentBin: agentBin, AggregatorBin: aggBin, FanoutctlBin: ctlBin, DryRun: m.dry, AggregatorArgs: strings.Fields(aggArgs),
			AgentArgs: func(node, addr, token string) []string {
				r := strings.NewReplacer("{addr}", addr, "{token}", token, "{node}", node)
				return strings.Fields(r.Replace(agentAgg))
			},
			ProbeMode: "sockops", // the per-socket probe (issue 11): the run fails if an agent fell back
			Logger:    logger,
		})
		res, err := incident.Run(ctx, c)
		if err != nil {
			return fmt.Errorf("run %s: %w", m.label, err)
		}
		res.WriteSummary(os.Stdout)
		runs = append(runs, incident.Labeled{Label: m.label, Result: res})
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("create report dir: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create report: %w", err)
	}
	defer f.Close()
	if err := report.Write(f, incident.CombinedReport("fanout demo: a telemetry DaemonSet's cluster-wide LISTs on a real API server", runs...)); err != nil {
		return err
	}
	abs, _ := filepath.Abs(out)
	fmt.Printf("\nreport: %s\n", abs)
	return nil
}
