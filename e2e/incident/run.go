package incident

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/latency"
)

// Users of the run: each workload runs as its own normal (non-exempt) user, like service accounts.
const (
	SystemUser    = "system-user"
	TelemetryUser = "telemetry-user"
	ProbeUser     = "probe-user"
	// AggregatorUser is fanout-aggregator's own API user: /metrics and placement watches, audited (its API cost).
	AggregatorUser = "fanout-aggregator"
	// AgentUserPrefix + node name is the user of that node's fanout agent: the audit log counts each node's
	// agent footprint separately.
	AgentUserPrefix = "fanout-agent-"
)

// Workload identities of the replay.
const (
	KubeProxy  = "DaemonSet/kube-system/kube-proxy"
	NodeAgent  = "DaemonSet/kube-system/node-problem-detector"
	Telemetry  = "DaemonSet/monitoring/telemetry-agent"
	seedNS     = "bulk"
	probeNS    = "default"
	probeCM    = "probe-target"
	systemNS   = "kube-system"
	monitoring = "monitoring"
)

// Run replays the incident and returns what happened. Everything it starts is stopped before it returns.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("incident config: %w", err)
	}
	log := cfg.Logger.With("component", "incident")
	total := cfg.Baseline + cfg.Rollout + cfg.Incident + cfg.Recovery
	ctx, cancel := context.WithTimeout(ctx, total+10*time.Minute) // set-up and teardown included
	defer cancel()

	workDir := cfg.WorkDir
	if workDir == "" {
		if workDir, err = os.MkdirTemp("", "fanout-incident-"); err != nil {
			return nil, fmt.Errorf("work dir: %w", err)
		}
		defer os.RemoveAll(workDir)
	} else if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	logDir := filepath.Join(workDir, "pods")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}

	var agentUsers []string
	for i := 1; i <= cfg.Nodes; i++ {
		agentUsers = append(agentUsers, fmt.Sprintf("%snode-%d", AgentUserPrefix, i))
	}
	live(cfg, "starting etcd and kube-apiserver (built once from the Go module proxy, then cached)")
	cp, err := harness.Start(ctx, harness.Config{
		Users:      append([]string{SystemUser, TelemetryUser, ProbeUser, AggregatorUser}, agentUsers...),
		AuditUsers: append([]string{AggregatorUser}, agentUsers...),
		WorkDir:    filepath.Join(workDir, "controlplane"), KeepWorkDir: cfg.WorkDir != "",
		Logger: log,
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, cp.Close()) }()
	admin, err := kubernetes.NewForConfig(cp.RESTConfig(harness.AdminUser))
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	live(cfg, "kube-apiserver ready at %s; seeding %d pods so cluster-wide LISTs are expensive", cp.URL, cfg.SeedPods)
	seedStart := time.Now()
	if err := setup(ctx, admin, cfg, agentUsers); err != nil {
		return nil, err
	}
	live(cfg, "seeded in %s", time.Since(seedStart).Round(100*time.Millisecond))

	bin, err := fleet.BuildPodload(ctx, workDir)
	if err != nil {
		return nil, err
	}
	fl, err := fleet.New(ctx, fleet.Config{Nodes: cfg.Nodes, PodloadBin: bin, LogDir: logDir, Logger: log}, admin)
	if err != nil {
		return nil, err
	}
	var guard Guard // closed after the pods stop, so nothing is left unguarded while they run
	defer func() {
		err = errors.Join(err, fl.Close())
		if guard != nil {
			err = errors.Join(err, guard.Close())
		}
	}()

	if cfg.Guard != nil {
		env := &Env{ControlPlane: cp, Fleet: fl, AgentUser: agentUsers[0], WorkDir: workDir, Logger: log}
		if env.AgentKubeconfig, err = cp.WriteKubeconfig(agentUsers[0]); err != nil {
			return nil, err
		}
		if err := AggregatorFiles(cp, env); err != nil {
			return nil, err
		}
		live(cfg, "starting fanout: an agent per node, one aggregator")
		if err := cfg.Guard.Start(ctx, env); err != nil {
			return nil, errors.Join(fmt.Errorf("start guard: %w", err), cfg.Guard.Close())
		}
		guard = cfg.Guard
	}

	wl, err := createWorkloads(ctx, admin)
	if err != nil {
		return nil, err
	}
	sysKC, err := cp.WriteKubeconfig(SystemUser)
	if err != nil {
		return nil, err
	}
	telKC, err := cp.WriteKubeconfig(TelemetryUser)
	if err != nil {
		return nil, err
	}
	podDuration := fmt.Sprintf("--duration=%s", total+time.Minute)
	for _, n := range fl.Nodes {
		for _, s := range []struct {
			w    *fleet.Workload
			cm   string
			rate float64
		}{{wl.kubeProxy, "kube-proxy", cfg.SystemRate}, {wl.npd, "node-problem-detector", cfg.SystemRate / 2}} {
			if _, err := fl.StartPod(ctx, s.w, n, fleet.PodSpec{Kubeconfig: sysKC, Args: []string{
				"--mode=get", "--resource=configmaps", "--namespace=" + systemNS, "--name=" + s.cm,
				fmt.Sprintf("--rate=%g", s.rate), podDuration,
			}}); err != nil {
				return nil, err
			}
		}
	}

	// Warm up: t=0 once the system workloads report steady calls (bounded).
	for deadline := time.Now().Add(15 * time.Second); ; {
		if warm(fl.Recorder, []string{KubeProxy, NodeAgent}) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("warm-up: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}

	probeCS, err := kubernetes.NewForConfig(cp.RESTConfig(ProbeUser))
	if err != nil {
		return nil, fmt.Errorf("probe client: %w", err)
	}
	probe := latency.New(latency.Config{Interval: cfg.ProbeInterval, Timeout: 10 * time.Second}, func(ctx context.Context) error {
		_, err := probeCS.CoreV1().ConfigMaps(probeNS).Get(ctx, probeCM, metav1.GetOptions{})
		return err
	})
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); probe.Run(pctx) }()
	defer func() { pstop(); pwg.Wait() }()

	res = &Result{
		Nodes: cfg.Nodes, SeedPods: cfg.SeedPods, TelemetryWorkers: cfg.TelemetryWorkers, Guarded: cfg.Guard != nil, Mode: cfg.Mode,
		System: []string{KubeProxy, NodeAgent}, TelemetryID: Telemetry, Recorder: fl.Recorder,
		TelemetryStarted: map[string]time.Time{},
	}
	if cfg.KubectlBin != "" {
		res.TelemetryTool = fmt.Sprintf("kubectl get pods -A -o json, %d loops per pod", cfg.KubectlLoops)
	}
	cpu := newCPUSampler(cp.PIDs(), fl)
	cctx, cstop := context.WithCancel(ctx)
	var cwg sync.WaitGroup
	cwg.Add(1)
	go func() { defer cwg.Done(); cpu.run(cctx, time.Second) }()
	defer func() { cstop(); cwg.Wait() }()
	res.Start = time.Now()
	res.Onset = res.Start.Add(cfg.Baseline)
	res.IncidentEnd = res.Onset.Add(cfg.Rollout + cfg.Incident)
	res.End = res.IncidentEnd.Add(cfg.Recovery)
	live(cfg, "baseline: %d nodes, system DaemonSets calling lightly; unrelated client GETs every %s", cfg.Nodes, cfg.ProbeInterval)

	ticker := newAccount(cfg, res, probe)
	var rolled int
	heavy := make([]*fleet.Pod, 0, cfg.Nodes)
	rolledBack, releaseAsked := false, false
	var rollbackDone time.Time
	step := time.Duration(0)
	if cfg.Nodes > 1 {
		step = cfg.Rollout / time.Duration(cfg.Nodes-1)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for now := time.Now(); now.Before(res.End); now = time.Now() {
		for rolled < cfg.Nodes && !now.Before(res.Onset.Add(time.Duration(rolled)*step)) {
			if rolled == 0 && cfg.KubectlBin != "" {
				live(cfg, "ONSET: rolling out %s to every node (%d loops of `kubectl get pods -A -o json` per pod)", Telemetry, cfg.KubectlLoops)
			} else if rolled == 0 {
				live(cfg, "ONSET: rolling out %s to every node (%d cluster-wide LIST loops per pod, rv=%q)", Telemetry, cfg.TelemetryWorkers, cfg.ResourceVersion)
			}
			spec := fleet.PodSpec{Kubeconfig: telKC, Args: []string{
				"--mode=list", "--resource=pods", "--decode=false", fmt.Sprintf("--concurrency=%d", cfg.TelemetryWorkers),
				"--resource-version=" + cfg.ResourceVersion, "--timeout=30s", podDuration,
			}}
			if cfg.KubectlBin != "" {
				// The real tool, unmodified, as a DaemonSet's shell loop would run it (podload only loops and counts).
				spec.Args = []string{"--mode=exec", fmt.Sprintf("--concurrency=%d", cfg.KubectlLoops), "--timeout=60s", podDuration,
					"--", cfg.KubectlBin, "--kubeconfig=" + telKC, "get", "pods", "-A", "-o", "json"}
			}
			p, err := fl.StartPod(ctx, wl.telemetry, fl.Nodes[rolled], spec)
			if err != nil {
				return nil, err
			}
			heavy = append(heavy, p)
			res.TelemetryStarted[fl.Nodes[rolled].Name] = time.Now()
			rolled++
		}
		if cfg.Rollback && !rolledBack && !now.Before(res.IncidentEnd) {
			rolledBack = true
			res.RolledBack = now
			live(cfg, "ROLLBACK: %s rolled back to a cheap config (each node's pod replaced by one doing %g light GETs/s)", Telemetry, cfg.LightRate)
			if err := rollback(ctx, admin, fl, wl.telemetry, heavy, fleet.PodSpec{Kubeconfig: telKC, Args: []string{
				"--mode=get", "--resource=configmaps", "--namespace=" + monitoring, "--name=telemetry-agent",
				fmt.Sprintf("--rate=%g", cfg.LightRate), podDuration,
			}}, log); err != nil {
				return nil, err
			}
			rollbackDone = time.Now()
		}
		// The operator releases once the rolled-back pods are up and held on every node (a release that reaches a
		// node before its new pod is blocked lets that pod in at once: correct, but no ramp to show), or after
		// releaseWaitLimit regardless.
		if rolledBack && cfg.ReleaseAfter > 0 && !releaseAsked && !now.Before(rollbackDone.Add(cfg.ReleaseAfter)) &&
			(heldOnEveryNode(cfg.Guard.Events(), Telemetry, fl) || now.After(rollbackDone.Add(releaseWaitLimit))) {
			releaseAsked = true
			if r, ok := cfg.Guard.(Releaser); ok && hasTrip(cfg.Guard.Events(), Telemetry) {
				res.ReleaseAsked = time.Now()
				out, err := r.Release(ctx, Telemetry, "rolled back to light GETs")
				res.ReleaseOutput = out
				if err != nil {
					res.ReleaseOutput = err.Error()
				}
				live(cfg, "operator: fanoutctl release %s -> %s", Telemetry, res.ReleaseOutput)
			}
		}
		ticker.maybePrint(now)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("incident run: %w", ctx.Err())
		case <-tick.C:
		}
	}
	pstop()
	pwg.Wait()
	cstop()
	cwg.Wait()
	res.CPU = cpu.series()
	res.Probe = probe.Samples()
	if m, ok := cfg.Guard.(Metered); ok {
		res.Metrics = m.Metrics()
	}
	if cfg.Guard != nil {
		res.Events = append([]Event(nil), cfg.Guard.Events()...)
		sort.Slice(res.Events, func(i, j int) bool { return res.Events[i].At.Before(res.Events[j].At) })
	}
	// Give the last per-second reports a moment, then count the agents' footprint.
	time.Sleep(1500 * time.Millisecond)
	if counts, err := cp.AuditCounts(); err == nil {
		res.AgentRequests = map[string]int{}
		if c := counts[AggregatorUser]; c != nil {
			res.AggregatorRequests = c.Total
		}
		for _, u := range agentUsers {
			n := 0
			if c := counts[u]; c != nil {
				n = c.Total
			}
			res.AgentRequests[strings.TrimPrefix(u, AgentUserPrefix)] = n
		}
	}
	live(cfg, "run over; stopping pods, fanout, kube-apiserver and etcd")
	return res, nil
}

func setup(ctx context.Context, admin kubernetes.Interface, cfg Config, agentUsers []string) error {
	for _, ns := range []string{seedNS, systemNS, monitoring, probeNS} {
		if err := fleet.EnsureNamespace(ctx, admin, ns); err != nil {
			return err
		}
	}
	for _, cm := range []struct{ ns, name string }{{systemNS, "kube-proxy"}, {systemNS, "node-problem-detector"}, {probeNS, probeCM}, {monitoring, "telemetry-agent"}} {
		if _, err := admin.CoreV1().ConfigMaps(cm.ns).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: cm.name, Namespace: cm.ns},
			Data:       map[string]string{"config": "small"},
		}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create configmap %s/%s: %w", cm.ns, cm.name, err)
		}
	}
	if err := fleet.GrantClusterRead(ctx, admin, "e2e-workloads-read", []string{"pods", "configmaps"}, SystemUser, TelemetryUser, ProbeUser); err != nil {
		return err
	}
	// What a fanout agent reads: its node's pods (node-scoped informer), the API server's endpoints, nodes.
	if err := fleet.GrantRules(ctx, admin, "fanout-agent", AgentRules(), agentUsers...); err != nil {
		return err
	}
	// What the aggregator reads: the API server's /metrics (headroom signals) and the workload kinds' desired sizes
	// (full placement).
	if err := fleet.GrantRules(ctx, admin, "fanout-aggregator", AggregatorRules(), AggregatorUser); err != nil {
		return err
	}
	return fleet.Seed(ctx, admin, fleet.SeedConfig{Namespace: seedNS, Pods: cfg.SeedPods})
}

// AgentRules is what a fanout agent reads: its node's pods (node-scoped informer), the API server's endpoints, nodes,
// the owners that name a workload.
func AgentRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "nodes", "services", "endpoints", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets", "daemonsets", "deployments", "statefulsets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
	}
}

// AggregatorRules is what the aggregator reads: the API server's /metrics (headroom signals) and the workload kinds'
// desired sizes (full placement).
func AggregatorRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments", "replicasets", "statefulsets"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"get", "list", "watch"}},
	}
}

// AggregatorFiles writes the aggregator user's kubeconfig, token file and the API server's CA into env.
func AggregatorFiles(cp *harness.ControlPlane, env *Env) error {
	var err error
	env.AggregatorUser = AggregatorUser
	if env.AggregatorKubeconfig, err = cp.WriteKubeconfig(AggregatorUser); err != nil {
		return err
	}
	env.AggregatorTokenFile = filepath.Join(cp.WorkDir, "token-"+AggregatorUser)
	if err := os.WriteFile(env.AggregatorTokenFile, []byte(cp.Token(AggregatorUser)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write aggregator token: %w", err)
	}
	env.CAFile = filepath.Join(cp.WorkDir, "apiserver-ca.pem")
	if err := os.WriteFile(env.CAFile, cp.CAPEM, 0o644); err != nil {
		return fmt.Errorf("write api server ca: %w", err)
	}
	return nil
}

// rollback replaces each heavy pod, node by node in parallel, as a DaemonSet rollout would: the old pod's process is
// stopped, its object deleted and its cgroup removed, and a new pod of the same workload starts with spec.
func rollback(ctx context.Context, admin kubernetes.Interface, fl *fleet.Fleet, w *fleet.Workload, heavy []*fleet.Pod, spec fleet.PodSpec, log *slog.Logger) error {
	var wg sync.WaitGroup
	errs := make([]error, len(heavy))
	for i, p := range heavy {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(2 * time.Second); err != nil {
				errs[i] = err
				return
			}
			zero := int64(0)
			if err := admin.CoreV1().Pods(p.Object.Namespace).Delete(ctx, p.Object.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
				errs[i] = fmt.Errorf("delete pod %s: %w", p.Object.Name, err)
				return
			}
			for _, dir := range []string{p.ContainerDir, p.PodDir} {
				if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
					log.Warn("remove old pod cgroup", "dir", dir, "err", err) // the fleet removes its whole tree at the end
				}
			}
			if _, err := fl.StartPod(ctx, w, p.Node, spec); err != nil {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// releaseWaitLimit bounds how long the operator waits for the rolled-back pods to be held on every node.
const releaseWaitLimit = 20 * time.Second

// heldOnEveryNode reports whether the workload is held on every node now: the latest enforcement event of each node
// is a block (a node whose old pod went away before its new one was blocked shows "released" until it is).
func heldOnEveryNode(evs []Event, workload string, fl *fleet.Fleet) bool {
	last := map[string]Event{}
	for _, e := range evs {
		if e.Workload == workload && (e.Kind == "enforced" || e.Kind == "released") {
			last[e.Node] = e
		}
	}
	for _, n := range fl.Nodes {
		e, ok := last[n.Name]
		if !ok || e.Kind != "enforced" {
			return false
		}
	}
	return true
}

func hasTrip(evs []Event, workload string) bool {
	for _, e := range evs {
		if e.Kind == "trip" && e.Workload == workload {
			return true
		}
	}
	return false
}

type workloads struct{ kubeProxy, npd, telemetry *fleet.Workload }

func createWorkloads(ctx context.Context, admin kubernetes.Interface) (workloads, error) {
	var w workloads
	var err error
	if w.kubeProxy, err = fleet.CreateDaemonSet(ctx, admin, systemNS, "kube-proxy"); err != nil {
		return w, err
	}
	if w.npd, err = fleet.CreateDaemonSet(ctx, admin, systemNS, "node-problem-detector"); err != nil {
		return w, err
	}
	if w.telemetry, err = fleet.CreateDaemonSet(ctx, admin, monitoring, "telemetry-agent"); err != nil {
		return w, err
	}
	return w, nil
}

func live(cfg Config, format string, args ...any) {
	if cfg.Live != nil {
		fmt.Fprintf(cfg.Live, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
}

// warm reports whether each workload has a complete second of successful calls on record.
func warm(r *fleet.Recorder, ids []string) bool {
	for _, id := range ids {
		s := r.Series(id)
		if len(s) < 2 || s[len(s)-2].OK == 0 {
			return false
		}
	}
	return true
}
