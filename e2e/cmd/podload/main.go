// Command podload is the process inside a simulated pod of the e2e fleet: a real client-go program that talks to the
// API server the way a workload would, and prints one JSON line of its own counts per second on stdout so the
// harness knows what the workload really did.
//
// Modes:
//
//	get   GET one object (--namespace/--name, resource --resource) at --rate per second (light, like a system agent)
//	list  cluster-wide LIST of --resource in a loop by --concurrency workers (the expensive incident workload),
//	      --resource-version "" (quorum read from etcd) or "0" (watch cache)
//	idle  hold a client and make no calls
//	exec  run the command given after "--" in a loop by --concurrency workers: a real, unmodified tool as the pod's
//	      process (e.g. kubectl get pods -A -o json); each run counts as one call (ok on exit 0), its stdout bytes as
//	      response bytes. The children live in this process's cgroup (the pod's) and get a private $HOME, as each
//	      container has its own (kubectl's discovery cache stays per pod).
//
// The process exits after --duration (bounded) or on SIGTERM/SIGINT.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type config struct {
	kubeconfig      string
	mode            string
	resource        string
	namespace       string
	name            string
	rate            float64
	concurrency     int
	resourceVersion string
	duration        time.Duration
	timeout         time.Duration
	report          time.Duration
	decode          bool
	command         []string // mode exec: the command and its arguments
}

// Line is one per-interval report on stdout.
type Line struct {
	T       float64 `json:"t"` // unix seconds at the end of the interval
	OK      int64   `json:"ok"`
	Err     int64   `json:"err"`
	Denied  int64   `json:"denied"` // connection refused by a local policy (EPERM) or reset by teardown
	Items   int64   `json:"items"`  // objects received (LIST sizes; 0 with --decode=false)
	Bytes   int64   `json:"bytes"`  // response bytes (LISTs with --decode=false)
	LastErr string  `json:"last_err,omitempty"`
}

func main() {
	var cfg config
	flag.StringVar(&cfg.kubeconfig, "kubeconfig", "", "kubeconfig of the workload's user (required)")
	flag.StringVar(&cfg.mode, "mode", "get", "get | list | idle | exec")
	flag.StringVar(&cfg.resource, "resource", "configmaps", "pods | configmaps")
	flag.StringVar(&cfg.namespace, "namespace", "default", "namespace of the object to GET")
	flag.StringVar(&cfg.name, "name", "", "name of the object to GET (mode get)")
	flag.Float64Var(&cfg.rate, "rate", 1, "GETs per second (mode get)")
	flag.IntVar(&cfg.concurrency, "concurrency", 1, "LIST workers (mode list)")
	flag.StringVar(&cfg.resourceVersion, "resource-version", "", `LIST resourceVersion: "" (from etcd) or "0" (cache)`)
	flag.DurationVar(&cfg.duration, "duration", 10*time.Minute, "exit after this long (upper bound 1h)")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout")
	flag.DurationVar(&cfg.report, "report-interval", time.Second, "stdout report interval")
	flag.BoolVar(&cfg.decode, "decode", true, "decode LIST responses (false: read and count the raw protobuf bytes, "+
		"so a whole simulated fleet's clients do not compete with the API server for this machine's CPU)")
	flag.Parse()
	cfg.command = flag.Args()
	if err := run(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "podload: %v\n", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if cfg.mode == "exec" {
		return runExec(cfg)
	}
	if cfg.kubeconfig == "" {
		return errors.New("--kubeconfig is required")
	}
	if cfg.duration <= 0 || cfg.duration > time.Hour {
		return fmt.Errorf("--duration %s out of range (0, 1h]", cfg.duration)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	rc.QPS, rc.Burst = -1, 0 // the workload's own pacing, not client-go's limiter
	rc.Timeout = cfg.timeout
	rc.UserAgent = "podload/" + cfg.mode
	rc.ContentType = "application/vnd.kubernetes.protobuf" // as kubelets and most controllers talk
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()

	var c counters
	var wg sync.WaitGroup
	switch cfg.mode {
	case "get":
		if cfg.name == "" || cfg.rate <= 0 || cfg.rate > 1000 {
			return errors.New("mode get needs --name and 0 < --rate <= 1000")
		}
		wg.Add(1)
		go func() { defer wg.Done(); getLoop(ctx, cs, cfg, &c) }()
	case "list":
		if cfg.concurrency < 1 || cfg.concurrency > 256 {
			return errors.New("--concurrency must be in [1, 256]")
		}
		for range cfg.concurrency {
			wg.Add(1)
			go func() { defer wg.Done(); listLoop(ctx, cs, cfg, &c) }()
		}
	case "idle":
	default:
		return fmt.Errorf("unknown --mode %q", cfg.mode)
	}
	return report(ctx, cfg, &c, &wg)
}

// report prints the counters every report interval until ctx ends and the workers have returned.
func report(ctx context.Context, cfg config, c *counters, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); <-ctx.Done(); close(done) }()
	enc := json.NewEncoder(os.Stdout)
	tick := time.NewTicker(cfg.report)
	defer tick.Stop()
	for {
		select {
		case <-done:
			_ = enc.Encode(c.take())
			return nil
		case <-tick.C:
			if err := enc.Encode(c.take()); err != nil {
				return fmt.Errorf("write report: %w", err) // the harness went away
			}
		}
	}
}

type counters struct {
	ok, err, denied, items, bytes atomic.Int64
	mu                            sync.Mutex
	lastErr                       string
}

func (c *counters) record(items, bytes int, err error) {
	switch {
	case err == nil:
		c.ok.Add(1)
		c.items.Add(int64(items))
		c.bytes.Add(int64(bytes))
		return
	case errors.Is(err, context.Canceled):
		return
	case denied(err):
		c.denied.Add(1)
	default:
		c.err.Add(1)
	}
	c.mu.Lock()
	c.lastErr = err.Error()
	c.mu.Unlock()
}

func (c *counters) take() Line {
	c.mu.Lock()
	last := c.lastErr
	c.lastErr = ""
	c.mu.Unlock()
	return Line{
		T: float64(time.Now().UnixMilli()) / 1000, OK: c.ok.Swap(0), Err: c.err.Swap(0),
		Denied: c.denied.Swap(0), Items: c.items.Swap(0), Bytes: c.bytes.Swap(0), LastErr: last,
	}
}

func getLoop(ctx context.Context, cs kubernetes.Interface, cfg config, c *counters) {
	interval := time.Duration(float64(time.Second) / cfg.rate)
	// Jittered start so a fleet of these does not beat in phase.
	next := time.Now().Add(time.Duration(rand.Int64N(int64(interval) + 1)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(interval)
		if time.Until(next) < -interval { // fell behind (server slow): do not burst to catch up
			next = time.Now().Add(interval)
		}
		var err error
		switch cfg.resource {
		case "pods":
			_, err = cs.CoreV1().Pods(cfg.namespace).Get(ctx, cfg.name, metav1.GetOptions{})
		default:
			_, err = cs.CoreV1().ConfigMaps(cfg.namespace).Get(ctx, cfg.name, metav1.GetOptions{})
		}
		c.record(1, 0, err)
	}
}

func listLoop(ctx context.Context, cs *kubernetes.Clientset, cfg config, c *counters) {
	backoff := 50 * time.Millisecond
	opts := metav1.ListOptions{ResourceVersion: cfg.resourceVersion}
	for ctx.Err() == nil {
		var n, size int
		var err error
		switch {
		case !cfg.decode:
			size, err = listRaw(ctx, cs, cfg)
		case cfg.resource == "pods":
			pl, e := cs.CoreV1().Pods("").List(ctx, opts)
			if e == nil {
				n = len(pl.Items)
			}
			err = e
		default:
			cl, e := cs.CoreV1().ConfigMaps("").List(ctx, opts)
			if e == nil {
				n = len(cl.Items)
			}
			err = e
		}
		c.record(n, size, err)
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			backoff = time.Second
		}
		// Like a real relist loop: back off on errors, capped, with jitter.
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// listRaw makes the same cluster-wide LIST request as the typed client and counts the response bytes unparsed.
func listRaw(ctx context.Context, cs *kubernetes.Clientset, cfg config) (int, error) {
	req := cs.CoreV1().RESTClient().Get().Resource(cfg.resource)
	if cfg.resourceVersion != "" {
		req = req.Param("resourceVersion", cfg.resourceVersion)
	}
	body, err := req.DoRaw(ctx)
	return len(body), err
}

// denied reports whether a call failed because the node refused the connection locally (connect denied with EPERM)
// or tore the established one down (reset/aborted), as fanout's kill switch does, rather than a server-side error.
func denied(err error) bool {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	// Some client-go paths flatten the error chain into text.
	msg := err.Error()
	return strings.Contains(msg, "operation not permitted") || strings.Contains(msg, "connection reset by peer") ||
		strings.Contains(msg, "software caused connection abort")
}
