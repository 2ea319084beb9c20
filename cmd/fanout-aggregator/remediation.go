package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/remediate"
	"github.com/fanoutdev/fanout/api/protect"
)

// RemediationConfig turns a trip that holds too long into a durable pause through the API server.
type RemediationConfig struct {
	After      time.Duration // 0: off
	DryRun     bool
	Kubeconfig string // "" = in-cluster
	Every      time.Duration
}

func (c *RemediationConfig) registerFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.After, "remediate.after", 0, "pause a tripped workload through the API (DaemonSet: unschedulable nodeSelector; Deployment/StatefulSet: scale to 0) once its trip has held this long; 0 = never")
	fs.BoolVar(&c.DryRun, "remediate.dry-run", false, "send remediation patches as server-side dry runs only")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig of the aggregator's API client: remediation, --placement.watch, --headroom.apiserver-url=in-cluster (default: in-cluster)")
	fs.DurationVar(&c.Every, "remediate.interval", 5*time.Second, "how often held trips are checked for remediation")
}

// runRemediation checks the engine's active blocks every cfg.Every and pauses the ones held longer than cfg.After.
// Several replicas may do this at once: a pause is idempotent (the first record wins).
func runRemediation(ctx context.Context, cfg RemediationConfig, protected []string, eng *engine.Engine, logger *slog.Logger) error {
	logger = logger.With("component", "remediate")
	rc, err := kubeRESTConfig(cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("remediation client: %w", err)
	}
	rc.UserAgent = "fanout-aggregator/" + version
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("remediation client: %w", err)
	}
	rem, err := remediate.New(remediate.Config{Client: client, Actor: "fanout-aggregator", DryRun: cfg.DryRun,
		Protected: func(w remediate.Workload, _ metav1.Object) bool { return matchesAny(protected, w.String()) }})
	if err != nil {
		return err
	}
	esc, err := remediate.NewEscalator(remediate.EscalatorConfig{After: cfg.After, Remediator: rem, Logger: logger})
	if err != nil {
		return err
	}
	firstSeen := map[string]time.Time{}
	tick := time.NewTicker(cfg.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			_, dirs := eng.Directives()
			tripped := map[string]remediate.Cause{}
			for _, d := range dirs {
				if !d.Block {
					continue
				}
				if _, ok := firstSeen[d.Workload]; !ok {
					firstSeen[d.Workload] = now
				}
				tripped[d.Workload] = remediate.Cause{Reason: d.Reason, DecisionID: "epoch-" + strconv.FormatUint(d.Epoch, 10),
					DecidedAt: firstSeen[d.Workload]}
			}
			for w := range firstSeen {
				if _, ok := tripped[w]; !ok {
					delete(firstSeen, w)
				}
			}
			for _, o := range esc.Tick(ctx, now, tripped) {
				if o.Err != nil {
					logger.Warn("remediation failed", "workload", o.Workload, "err", o.Err)
					continue
				}
				logger.Info("remediation", "workload", o.Workload, "result", o.Result, "dry_run", cfg.DryRun)
			}
		}
	}
}

// matchesAny is the shared protected-workload contract (api/protect); patterns were validated with the flags.
func matchesAny(patterns []string, workload string) bool {
	set, err := protect.Compile(patterns)
	if err != nil {
		return true // fail safe: never pause with a malformed list
	}
	return set.Match(workload)
}

func kubeRESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}
