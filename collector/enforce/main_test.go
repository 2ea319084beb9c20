package enforce_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
)

func TestMain(m *testing.M) {
	enforcetest.MaybeRunClient()
	maybeRunAgent()
	os.Exit(m.Run())
}

// resolver is a map-backed WorkloadResolver + PriorityResolver.
type resolver struct {
	mu       sync.Mutex
	workload map[string]string
	priority map[string]string
}

func newResolver() *resolver {
	return &resolver{workload: map[string]string{}, priority: map[string]string{}}
}

func (r *resolver) set(uid, workload string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workload[uid] = workload
}

func (r *resolver) WorkloadOf(uid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workload[uid]
	return w, ok
}

func (r *resolver) PriorityClassOf(uid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.priority[uid]
	return p, ok
}

// env is one simulated node with the enforce programs attached and two API servers (IPv4, IPv6) registered.
type env struct {
	pin, pods string
	v4, v6    *enforcetest.Server
	res       *resolver
	enf       *enforce.Enforcer
	cancel    context.CancelFunc
	runErr    chan error
}

func newEnv(t *testing.T, sweep time.Duration) *env { return newEnvNode(t, sweep, "") }

func newEnvNode(t *testing.T, sweep time.Duration, node string) *env {
	t.Helper()
	enforcetest.RequirePrivileged(t)
	e := &env{pin: enforcetest.PinDir(t), res: newResolver()}
	_, e.pods = enforcetest.NodeCgroup(t)
	e.v4 = enforcetest.StartServer(t, "127.0.0.1")
	e.v6 = enforcetest.StartServer(t, "::1")
	t.Cleanup(func() { enforce.Uninstall(e.pin) })
	e.start(t, sweep, node)
	enforcetest.RegisterEndpoints(t, e.pin, e.v4.Addr, e.v6.Addr)
	return e
}

func (e *env) start(t *testing.T, sweep time.Duration, node string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	enf, err := enforce.New(enforce.Config{PinDir: e.pin, PodsCgroup: e.pods, SweepInterval: sweep, Node: node},
		enforce.Deps{Workloads: e.res}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.enf, e.cancel, e.runErr = enf, cancel, make(chan error, 1)
	go func() { e.runErr <- enf.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-e.runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := enf.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := enf.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pod creates a pod cgroup with one container for workload and returns (pod dir, container dir).
func (e *env) pod(t *testing.T, uid, workload string) (string, string) {
	t.Helper()
	e.res.set(uid, workload)
	return enforcetest.PodCgroup(t, e.pods, uid, "app")
}

func uid(n int) string { return fmt.Sprintf("%08d-0000-4000-8000-000000000000", n) }

// probeOnce runs a probe client in ctr and returns its first result ("ok" or "err" + detail).
func probeOnce(t *testing.T, ctr string, srv *enforcetest.Server) enforcetest.Event {
	t.Helper()
	c := enforcetest.StartClient(t, ctr, enforcetest.ModeProbe, srv, 300*time.Millisecond)
	for {
		ev := c.Next(t, 5*time.Second)
		if ev.Kind == "ok" || ev.Kind == "err" {
			c.Cmd.Process.Kill()
			return ev
		}
	}
}

func wantDenied(t *testing.T, ev enforcetest.Event, what string) {
	t.Helper()
	if (ev.Kind != "err" && ev.Kind != "dialerr") || !strings.Contains(ev.Detail, "operation not permitted") {
		t.Fatalf("%s: got %s %q, want EPERM", what, ev.Kind, ev.Detail)
	}
}

func wantOK(t *testing.T, ev enforcetest.Event, what string) {
	t.Helper()
	if ev.Kind != "ok" {
		t.Fatalf("%s: got %s %q, want ok", what, ev.Kind, ev.Detail)
	}
}

// --- agent child process (for the kill -9 test) ---

const (
	envAgent    = "FANOUT_TEST_AGENT"
	envPin      = "FANOUT_TEST_PIN"
	envPods     = "FANOUT_TEST_PODS"
	envResolver = "FANOUT_TEST_RESOLVER"
	envBlock    = "FANOUT_TEST_BLOCK"
)

// maybeRunAgent runs the agent role in a re-exec'd process: New, Run, optionally Apply a block, print "ready",
// then wait to be killed.
func maybeRunAgent() {
	if os.Getenv(envAgent) == "" {
		return
	}
	res := newResolver()
	if err := json.Unmarshal([]byte(os.Getenv(envResolver)), &res.workload); err != nil {
		fmt.Println("fatal", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	enf, err := enforce.New(enforce.Config{PinDir: os.Getenv(envPin), PodsCgroup: os.Getenv(envPods),
		SweepInterval: 20 * time.Millisecond}, enforce.Deps{Workloads: res}, log)
	if err != nil {
		fmt.Println("fatal", err)
		os.Exit(1)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	go enf.Run(ctx)
	if w := os.Getenv(envBlock); w != "" {
		if err := enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: w, TTL: time.Minute}); err != nil {
			fmt.Println("fatal", err)
			os.Exit(1)
		}
	}
	fmt.Println("ready")
	<-ctx.Done()
	os.Exit(0)
}

func blockedIDs(t *testing.T, pin string) map[uint64]blockmap.Entry {
	t.Helper()
	m, err := blockmap.Open(pin)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	l, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
