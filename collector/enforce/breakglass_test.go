package enforce_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
	"github.com/fanoutdev/fanout/collector/nodectl"
)

// runningEnforcer is an Enforcer with Run going; stop cancels Run and closes it (pins stay), like an agent exiting.
type runningEnforcer struct {
	enf  *enforce.Enforcer
	stop func()
}

func startEnforcer(t *testing.T, pin, pods string, res enforce.WorkloadResolver) runningEnforcer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	enf, err := enforce.New(enforce.Config{PinDir: pin, PodsCgroup: pods, SweepInterval: 20 * time.Millisecond},
		enforce.Deps{Workloads: res}, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- enf.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := enf.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	t.Cleanup(stop)
	return runningEnforcer{enf: enf, stop: stop}
}

func nodeCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := nodectl.Run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("fanoutctl node %v: exit %d: %s %s", args, code, out.String(), errb.String())
	}
	return out.String()
}

func exemptOf(t *testing.T, enf *enforce.Enforcer, workload string) int {
	t.Helper()
	for _, b := range enf.Blocked() {
		if b.Workload == workload {
			return b.Exempt
		}
	}
	return -1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Finding 4: break-glass sticks. A workload is blocked, the agent stops, `fanoutctl node unblock --pod-uid` lifts one
// pod (and one pod that appeared while no agent ran); an agent started with no aggregator restores the workload's
// block from the pinned record but leaves both exempt pods allowed while their sibling stays blocked. A block
// directive (renewal) does not undo the exemption either; `node block` of the pod ends it; an exemption with a short
// --ttl lapses and the pod is blocked again.
func TestBreakGlassSurvivesRestart(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	pin := enforcetest.PinDir(t)
	_, pods := enforcetest.NodeCgroup(t)
	v4 := enforcetest.StartServer(t, "127.0.0.1")
	t.Cleanup(func() { enforce.Uninstall(pin) })
	res := newResolver()
	res.set(uid(1), web)
	res.set(uid(2), web)
	res.set(uid(4), web)
	pod1, ctr := enforcetest.PodCgroup(t, pods, uid(1), "app")
	_, sib := enforcetest.PodCgroup(t, pods, uid(2), "app")
	node := []string{"--bpf.pin-dir", pin, "--cgroup.root", pods}

	first := startEnforcer(t, pin, pods, res)
	enforcetest.RegisterEndpoints(t, pin, v4.Addr)
	if err := first.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute, Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	wantDenied(t, probeOnce(t, ctr, v4), "pod before break-glass")
	wantDenied(t, probeOnce(t, sib, v4), "sibling before break-glass")
	first.stop()

	// Agent dead: unblock one pod; a pod of the workload appears and is unblocked before any agent saw it.
	out := nodeCmd(t, append([]string{"unblock", "--pod-uid", uid(1)}, node...)...)
	if !strings.Contains(out, "exempt from re-blocking") || !strings.Contains(out, web) {
		t.Fatalf("unblock output %q: want the exemption and the workload", out)
	}
	_, late := enforcetest.PodCgroup(t, pods, uid(4), "app")
	nodeCmd(t, append([]string{"unblock", "--pod-uid", uid(4)}, node...)...)
	wantOK(t, probeOnce(t, ctr, v4), "unblocked pod, agent dead")

	exempt := listExempt(t, node)
	if r := exempt[uid(1)]; r.Workload != web || r.Active || !r.BreakGlass {
		t.Fatalf("list: exempt row of the unblocked pod = %+v", r)
	}
	if d, err := time.ParseDuration(exempt[uid(1)].ExpiresIn); err != nil || d > time.Minute || d < 30*time.Second {
		t.Fatalf("exemption expires in %q, want what remained of the 1m block", exempt[uid(1)].ExpiresIn)
	}
	if d, err := time.ParseDuration(exempt[uid(4)].ExpiresIn); err != nil || d > time.Hour || d < 59*time.Minute {
		t.Fatalf("list: exempt row of the pod never blocked = %+v, want a 1h exemption", exempt[uid(4)])
	}

	// A new agent, no aggregator: the workload is restored from its pinned record, the exempt pods are not blocked.
	second := startEnforcer(t, pin, pods, res)
	wantOK(t, probeOnce(t, ctr, v4), "exempt pod after agent restart")
	wantOK(t, probeOnce(t, late, v4), "exempt pod that appeared while no agent ran")
	wantDenied(t, probeOnce(t, sib, v4), "sibling after agent restart")
	if n := exemptOf(t, second.enf, web); n != 2 {
		t.Fatalf("Blocked(): %d exempt pods of %s, want 2", n, web)
	}
	if r := listExempt(t, node)[uid(4)]; r.Workload != web {
		t.Fatalf("list after restart: exempt row of the late pod = %+v, want its workload filled in by the agent", r)
	}
	// An aggregator's block (a renewal, or a new epoch) keeps the exemption.
	if err := second.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute, Epoch: 4}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, probeOnce(t, ctr, v4), "exempt pod after a block directive")
	wantDenied(t, probeOnce(t, sib, v4), "sibling after a block directive")

	// An explicit block of the pod ends its exemption; the agent then holds it for its workload again.
	out = nodeCmd(t, append([]string{"block", "--pod-uid", uid(1), "--keep-connections"}, node...)...)
	if !strings.Contains(out, "cleared the break-glass exemption") {
		t.Fatalf("block output %q: want the exemption cleared", out)
	}
	wantDenied(t, probeOnce(t, ctr, v4), "pod blocked again by node block")
	waitFor(t, "the agent to hold the re-blocked pod for its workload", func() bool { return exemptOf(t, second.enf, web) == 1 })
	if e := blockedIDs(t, pin)[enforcetest.CgroupID(t, pod1)]; e.WorkloadHash != blockmap.WorkloadHash(web) {
		t.Fatalf("re-blocked pod's entry %+v: want the workload's block", e)
	}

	// With the agent running: a short exemption holds, then lapses; the sweep removes it and blocks the pod again.
	nodeCmd(t, append([]string{"unblock", "--pod-uid", uid(2), "--ttl", "1500ms"}, node...)...)
	wantOK(t, probeOnce(t, sib, v4), "sibling during its short exemption")
	if err := second.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute, Epoch: 4}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, probeOnce(t, sib, v4), "sibling during its short exemption, after a renewal")
	waitFor(t, "the lapsed exemption to be removed", func() bool {
		m, err := blockmap.Open(pin)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		all, err := m.ListExempt()
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range all {
			if x.PodUID == uid(2) {
				return false
			}
		}
		return true
	})
	wantDenied(t, probeOnce(t, sib, v4), "sibling after its exemption lapsed")
	wantOK(t, probeOnce(t, late, v4), "the other exempt pod")
}

// listExempt runs `fanoutctl node list --json` and returns its exemption rows by pod UID.
func listExempt(t *testing.T, node []string) map[string]nodectl.Row {
	t.Helper()
	out := map[string]nodectl.Row{}
	dec := json.NewDecoder(strings.NewReader(nodeCmd(t, append([]string{"list", "--json"}, node...)...)))
	for dec.More() {
		var r nodectl.Row
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r.Exempt {
			out[r.PodUID] = r
		}
	}
	return out
}
