package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/incident"
)

type options struct {
	out        string
	binDir     string
	build      bool
	rev        string
	rate       float64
	newConns   float64
	delay      time.Duration
	warmup     time.Duration
	window     time.Duration
	rounds     int
	settle     time.Duration
	workingSet time.Duration
	memLimit   string
	keepWork   bool
	profDir    string
	timeLimit  time.Duration
}

func main() {
	if slices.Contains(os.Args[1:], podLoadFlag) {
		if err := podMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "pod-load:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", `file whose "Agent footprint" section is replaced (empty: print only)`)
	flag.StringVar(&o.binDir, "bin-dir", "bin", "where fanout-agent and fanout-aggregator are built (or found with -build=false)")
	flag.BoolVar(&o.build, "build", true, "go build ./cmd/fanout-agent and ./cmd/fanout-aggregator into -bin-dir first")
	flag.StringVar(&o.rev, "rev", "", "build the binaries from this git revision (git archive into the work dir), not the working tree: "+
		"figures of a commit, whatever is being edited")
	flag.Float64Var(&o.rate, "rate", 5000, "API calls per second on the node during load windows, all pods together")
	flag.Float64Var(&o.newConns, "new-conns", 4, "new API-server connections per second on the node during load windows")
	flag.DurationVar(&o.delay, "stub-delay", time.Millisecond, "the stub API server's time to answer each GET")
	flag.DurationVar(&o.warmup, "warmup", 15*time.Second, "load before the first measured window")
	flag.DurationVar(&o.window, "window", 30*time.Second, "length of each measured window")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "unmeasured time after each switch of the load, so no window holds the agent's last tick of the other condition")
	flag.DurationVar(&o.workingSet, "working-set", 10*time.Second, "after the windows, page the agent's binary out (process_madvise MADV_PAGEOUT) "+
		"and run this long under load to see how much of it the agent really uses (0: skip)")
	flag.IntVar(&o.rounds, "rounds", 2, "idle+load window pairs (interleaved: idle, load, idle, load, ...)")
	flag.StringVar(&o.memLimit, "gomemlimit", "256MiB", "GOMEMLIMIT of the agent (the Helm chart sets the container's memory limit, 256Mi)")
	flag.StringVar(&o.profDir, "profile-dir", "", "profile the agent: run it with --pyroscope.url at a local sink that writes every upload here "+
		"(cpu-<condition>-NNN.pb.gz, inuse_objects-..., for go tool pprof); profiling costs CPU, so the figures are printed, not written to -out")
	flag.BoolVar(&o.keepWork, "keep", false, "keep the work dir (logs of the agent, aggregator, control plane and pods)")
	flag.DurationVar(&o.timeLimit, "time-limit", 3*time.Minute, "give up (and clean up) this long after the binaries are built")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, logger); err != nil {
		logger.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// node is the simulated node's name; agentUser the API-server user its agent runs as.
const (
	node      = "node-1"
	agentUser = incident.AgentUserPrefix + node
)

// workloadSpec is one workload on the node: pods and calls per second per pod (before scaling to -rate).
type workloadSpec struct {
	kind, namespace, name string
	pods                  int
	rate                  float64
}

// nodeWorkloads are the node's 30 pods: two DaemonSets' pods, three Deployments; 5,000 calls/s in total, most of
// it from one busy controller Deployment, as on a real node.
var nodeWorkloads = []workloadSpec{
	{"DaemonSet", "kube-system", "kube-proxy", 1, 50},
	{"DaemonSet", "monitoring", "node-exporter", 1, 50},
	{"Deployment", "shop", "web", 12, 25},
	{"Deployment", "shop", "worker", 10, 100},
	{"Deployment", "platform", "controller", 6, 600},
}

func run(ctx context.Context, o options, logger *slog.Logger) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("needs root (cgroups, BPF)")
	}
	if o.rounds < 1 || o.window < 5*time.Second || o.rate <= 0 {
		return errors.New("-rounds >= 1, -window >= 5s and -rate > 0 required")
	}
	began := time.Now()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate own binary: %w", err)
	}
	work, err := os.MkdirTemp("", "fanout-bench-agent-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer func() {
		if o.keepWork {
			logger.Info("work dir kept", "dir", work)
			return
		}
		err = errors.Join(err, os.RemoveAll(work))
	}()
	agentBin, aggBin := filepath.Join(o.binDir, "fanout-agent"), filepath.Join(o.binDir, "fanout-aggregator")
	src := "."
	if o.rev != "" {
		if src, err = exportRevision(ctx, o.rev, filepath.Join(work, "src")); err != nil {
			return err
		}
	}
	if o.build || o.rev != "" {
		logger.Info("building fanout-agent and fanout-aggregator", "into", o.binDir, "from", revision(src))
		for bin, pkg := range map[string]string{agentBin: "./cmd/fanout-agent", aggBin: "./cmd/fanout-aggregator"} {
			if err := goBuild(ctx, src, bin, pkg); err != nil {
				return err
			}
		}
	}
	for _, b := range []string{agentBin, aggBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
	}
	if agentBin, err = filepath.Abs(agentBin); err != nil {
		return err
	}
	if aggBin, err = filepath.Abs(aggBin); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, o.timeLimit)
	defer cancel()
	logger.Info("starting etcd and kube-apiserver")
	cp, err := harness.Start(ctx, harness.Config{Users: []string{agentUser}, WorkDir: filepath.Join(work, "controlplane"), Logger: logger})
	if err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() { err = errors.Join(err, cp.Close()) }()
	admin, err := kubernetes.NewForConfig(cp.RESTConfig(harness.AdminUser))
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	if err := fleet.GrantRules(ctx, admin, "fanout-agent", incident.AgentRules(), agentUser); err != nil {
		return err
	}
	wls := make([]*fleet.Workload, len(nodeWorkloads))
	for i, w := range nodeWorkloads {
		if err := fleet.EnsureNamespace(ctx, admin, w.namespace); err != nil {
			return err
		}
		create := fleet.CreateDeployment
		if w.kind == "DaemonSet" {
			create = fleet.CreateDaemonSet
		}
		if wls[i], err = create(ctx, admin, w.namespace, w.name); err != nil {
			return err
		}
	}

	stub, err := startStub(work, o.delay)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stub.Close()) }()

	agg, err := startAggregator(ctx, work, aggBin)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, agg.proc.Stop(10*time.Second)) }()

	mount, err := cgroups.Cgroup2Mount()
	if err != nil {
		return fmt.Errorf("find cgroup2: %w", err)
	}
	podLogs := filepath.Join(work, "pods")
	if err := os.MkdirAll(podLogs, 0o755); err != nil {
		return fmt.Errorf("pod log dir: %w", err)
	}
	fl, err := fleet.New(ctx, fleet.Config{Nodes: 1, PodloadBin: self, LogDir: podLogs, Logger: logger,
		CgroupRoot: filepath.Join(mount, fmt.Sprintf("fanout-bench-%d", os.Getpid()))}, admin)
	if err != nil {
		return fmt.Errorf("simulated node: %w", err)
	}
	defer func() { err = errors.Join(err, fl.Close()) }()

	var sink *profileSink
	var extra []string
	if o.profDir != "" {
		if sink, err = startProfileSink(o.profDir); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, sink.Close()) }()
		extra = []string{"--pyroscope.url=" + sink.URL, "--pyroscope.upload-interval=10s"}
	}
	// The agent gives back its binary's start-up pages a minute after it starts (--memory.page-out-after); the
	// windows measure the agent after that, so the bench brings it inside the warm-up.
	extra = append(extra, "--memory.page-out-after="+pageOutAfter(o.warmup).String())
	ag, err := startAgent(ctx, cp, fl.Nodes[0], work, agentBin, stub.Addr, agg, o.memLimit, extra...)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, fl.Close()) // the pods first: nothing is left calling while the agent goes
		err = errors.Join(err, ag.stopAndUninstall())
	}()
	logger.Info("agent running", "pid", ag.proc.Pid(), "probe_mode", ag.mode, "metrics", ag.metricsURL)

	plan := newLoadPlan(o, wls, fl.Recorder)
	for i, w := range nodeWorkloads {
		rate := w.rate * plan.scale
		workers := min(16, max(2, int(rate/40)))
		for range w.pods {
			_, err := fl.StartPod(ctx, wls[i], fl.Nodes[0], fleet.PodSpec{Kubeconfig: "-", Args: []string{podLoadFlag,
				"-url=https://" + stub.Addr + "/api/v1/namespaces/" + w.namespace + "/pods/" + w.name,
				"-ca-file=" + stub.CAFile, fmt.Sprintf("-rate=%g", rate), fmt.Sprintf("-workers=%d", workers),
				"-new-conn=" + plan.newConnEvery.String(), "-life=" + (o.timeLimit + time.Minute).String()}})
			if err != nil {
				return err
			}
		}
	}
	logger.Info("pods started", "pods", plan.pods, "workloads", len(nodeWorkloads), "calls_per_s", o.rate,
		"new_conns_per_s", o.newConns, "setup", time.Since(began).Round(100*time.Millisecond))

	res, err := measure(ctx, o, ag, agg, stub, fl, sink, logger)
	if err != nil {
		return err
	}
	res.setup = time.Since(began) - res.measured
	res.source = revision(src)
	text := res.markdown(o, plan)
	fmt.Println()
	fmt.Print(text)
	if o.profDir != "" {
		logger.Info("profiles written; figures of a profiled agent are not written to -out", "dir", o.profDir)
	} else if o.out != "" {
		if err := writeSection(o.out, text); err != nil {
			return err
		}
		logger.Info("results written", "file", o.out, "section", sectionTitle)
	}
	return nil
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkg, err, stderr.String())
	}
	return nil
}

// exportRevision writes the tree of rev (git archive) into dir.
func exportRevision(ctx context.Context, rev, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("source dir: %w", err)
	}
	archive := exec.CommandContext(ctx, "git", "archive", "--format=tar", rev)
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	var stderr bytes.Buffer
	archive.Stderr, extract.Stderr = &stderr, &stderr
	if err := extract.Start(); err != nil {
		return "", fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		return "", fmt.Errorf("git archive %s: %w: %s", rev, err, stderr.String())
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("extract %s: %w: %s", rev, err, stderr.String())
	}
	id, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", rev).Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse %s: %w", rev, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".bench-revision"), id, 0o644); err != nil {
		return "", fmt.Errorf("record revision: %w", err)
	}
	return dir, nil
}

// revision names the source the binaries were built from: a commit, and for the working tree whether it had
// uncommitted changes.
func revision(src string) string {
	if b, err := os.ReadFile(filepath.Join(src, ".bench-revision")); err == nil {
		return "commit " + strings.TrimSpace(string(b))
	}
	id, err := exec.Command("git", "-C", src, "describe", "--always", "--dirty=+uncommitted changes", "--abbrev=7", "--match=NONE").Output()
	if err != nil {
		return "the working tree"
	}
	s := strings.TrimSpace(string(id))
	if c, dirty, ok := strings.Cut(s, "+"); ok {
		return "the working tree at " + c + " with " + dirty
	}
	return "the working tree at commit " + s
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// pageOutAfter is the agent's --memory.page-out-after in the bench: two thirds into the warm-up.
func pageOutAfter(warmup time.Duration) time.Duration { return max(warmup*2/3, time.Second) }
