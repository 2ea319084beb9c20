package nodectl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
	"github.com/fanoutdev/fanout/collector/nodectl"
)

func TestMain(m *testing.M) {
	enforcetest.MaybeRunClient()
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := nodectl.Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func firstResult(t *testing.T, ctr string, srv *enforcetest.Server) enforcetest.Event {
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

// With the agent gone (its pinned programs and maps left behind), `node block` cuts a pod off, tears down its open
// connection, `list` shows it and `unblock` lifts it.
func TestBreakGlassWithAgentDead(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	pin := enforcetest.PinDir(t)
	_, pods := enforcetest.NodeCgroup(t)
	srv := enforcetest.StartServer(t, "127.0.0.1")
	const uid = "abcdef01-0000-4000-8000-000000000001"
	_, ctr := enforcetest.PodCgroup(t, pods, uid, "app")
	_, sib := enforcetest.PodCgroup(t, pods, "abcdef01-0000-4000-8000-000000000002", "app")

	// An agent ran once and is gone: programs attached through pinned links, nothing running.
	enf, err := enforce.New(enforce.Config{PinDir: pin, PodsCgroup: pods},
		enforce.Deps{Workloads: enforce.WorkloadFunc(func(string) (string, bool) { return "", false })},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	enf.Close()
	t.Cleanup(func() { enforce.Uninstall(pin) })
	enforcetest.RegisterEndpoints(t, pin, srv.Addr)

	watch := enforcetest.StartClient(t, ctr, enforcetest.ModeWatch, srv, 5*time.Second)
	watch.WaitFor(t, "watching", 5*time.Second)

	start := time.Now()
	code, out, errOut := run(t, "block", "--bpf.pin-dir", pin, "--cgroup.root", pods, "--pod-uid", uid,
		"--ttl", "1m", "--workload", "Deployment/default/web")
	if code != 0 {
		t.Fatalf("block: exit %d: %s %s", code, out, errOut)
	}
	ev := watch.WaitFor(t, "err", 2*time.Second)
	t.Logf("block output: %q; open connection failed %s after the command started", out, ev.At.Sub(start))
	if !strings.Contains(out, "tore down 1 established") {
		t.Errorf("block output %q: want 1 connection torn down", out)
	}
	if ev := firstResult(t, ctr, srv); ev.Kind != "err" || !strings.Contains(ev.Detail, "operation not permitted") {
		t.Fatalf("blocked pod: %+v, want EPERM", ev)
	}
	if ev := firstResult(t, sib, srv); ev.Kind != "ok" {
		t.Fatalf("sibling pod: %+v, want ok", ev)
	}

	code, out, errOut = run(t, "list", "--bpf.pin-dir", pin, "--cgroup.root", pods, "--json")
	if code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut)
	}
	var row nodectl.Row
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &row); err != nil {
		t.Fatalf("list output %q: %v", out, err)
	}
	if row.PodUID != uid || !row.Active || !row.BreakGlass || row.Denied < 1 || row.ExpiresIn == "never" {
		t.Fatalf("list row = %+v", row)
	}
	code, out, _ = run(t, "list", "--bpf.pin-dir", pin, "--cgroup.root", pods)
	if code != 0 || !strings.Contains(out, uid) {
		t.Fatalf("list table: exit %d: %s", code, out)
	}

	// An agent starting afterwards adopts the break-glass block (keeps it until its TTL).
	enf, err = enforce.New(enforce.Config{PinDir: pin, PodsCgroup: pods, SweepInterval: 10 * time.Millisecond},
		enforce.Deps{Workloads: enforce.WorkloadFunc(func(string) (string, bool) { return "", false })},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	enf.Run(ctx)
	cancel()
	enf.Close()
	if ev := firstResult(t, ctr, srv); ev.Kind != "err" || !strings.Contains(ev.Detail, "operation not permitted") {
		t.Fatalf("break-glass block after an agent restart: %+v, want EPERM", ev)
	}

	code, out, errOut = run(t, "unblock", "--bpf.pin-dir", pin, "--cgroup.root", pods, "--pod-uid", uid)
	if code != 0 {
		t.Fatalf("unblock: exit %d: %s %s", code, out, errOut)
	}
	if ev := firstResult(t, ctr, srv); ev.Kind != "ok" {
		t.Fatalf("unblocked pod: %+v, want ok", ev)
	}
}

// Without enforce programs a block is recorded but the command fails loudly; bad usage exits 2.
func TestBlockWithoutProgramsFails(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	pin := enforcetest.PinDir(t)
	_, pods := enforcetest.NodeCgroup(t)
	pod, _ := enforcetest.PodCgroup(t, pods, "abcdef01-0000-4000-8000-000000000003", "app")
	code, _, errOut := run(t, "block", "--bpf.pin-dir", pin, "--cgroup", pod, "--keep-connections")
	if code != 1 || !strings.Contains(errOut, "NOT enforced") {
		t.Fatalf("block without programs: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := run(t, "block", "--bpf.pin-dir", pin, "--cgroup.root", pods); code != 2 {
		t.Fatalf("block without target: exit %d, want 2", code)
	}
	if code, _, _ := run(t, "frobnicate"); code != 2 {
		t.Fatalf("unknown command: exit %d, want 2", code)
	}
	code, out, _ := run(t, "unblock", "--bpf.pin-dir", pin, "--all")
	if code != 0 || !strings.Contains(out, "unblocked cgroup") {
		t.Fatalf("unblock --all: exit %d, %q", code, out)
	}
}
