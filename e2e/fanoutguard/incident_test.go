package fanoutguard

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/e2e/incident"
)

// TestIncidentArmed is the e2e of issue 5: the incident replayed on a real API server with a few simulated nodes,
// each with a real fanout-agent, and a real aggregator. The telemetry DaemonSet must be tripped, the block must reach
// every node, the system DaemonSets must be untouched, and once enforced the unrelated client's p99 must stay within
// 2x its baseline.
func TestIncidentArmed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver, a simulated fleet, fanout agents and an aggregator")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("FANOUT_REQUIRE_PRIVILEGED") == "1" {
			t.Fatal("FANOUT_REQUIRE_PRIVILEGED=1 but not root")
		}
		t.Skip("needs root (BPF, cgroups)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	work := t.TempDir()
	agentBin, aggBin, err := Build(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	help, _ := exec.CommandContext(ctx, agentBin, "--help").CombinedOutput()
	if !strings.Contains(string(help), "-aggregator.address") {
		// Interim until the agent reports to the aggregator (collector/report wired into cmd/fanout-agent).
		t.Skip("fanout-agent has no --aggregator.address flag yet: agent -> aggregator wiring not done")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g := New(Config{
		AgentBin: agentBin, AggregatorBin: aggBin, Logger: logger,
		AggregatorArgs: []string{
			"--apiserver.capacity-requests-per-s=400", "--apiserver.capacity-rx-bytes-per-s=1.2e8", "--fleet.warmup=5s",
			"--killswitch.overload-sustain=5s", "--killswitch.min-hold=15s", "--killswitch.ramp-duration=10s", "--killswitch.ramp-jitter=1s",
			"--killswitch.protected=" + incident.KubeProxy + "," + incident.NodeAgent,
		},
		AgentArgs: func(node, addr, token string) []string {
			return []string{"--aggregator.address=" + addr, "--aggregator.token-file=" + token}
		},
	})
	var live bytes.Buffer
	res, err := incident.Run(ctx, incident.Config{
		Nodes: 3, SeedPods: 2000, TelemetryWorkers: 8, Mode: "armed",
		Baseline: 10 * time.Second, Rollout: 2 * time.Second, Incident: 15 * time.Second, Recovery: 20 * time.Second,
		Guard: g, WorkDir: work, Live: &live, Logger: logger,
	})
	t.Log("\n" + live.String())
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	res.WriteSummary(&sum)
	t.Log(sum.String())

	tripAfter, ok := res.TripAfterOnset()
	if !ok {
		t.Fatalf("%s was not tripped; events %+v", incident.Telemetry, res.Events)
	}
	enforced, ok := res.EnforcedEverywhere()
	if !ok {
		t.Fatalf("block did not reach every node; events %+v", res.Events)
	}
	if touched := res.Touched(); len(touched) != 0 {
		t.Fatalf("system workloads acted on: %+v", touched)
	}
	base, err := res.ProbeStats(res.Start, res.Onset)
	if err != nil {
		t.Fatal(err)
	}
	from, to, ok := res.EnforcedWindow(2 * time.Second)
	if !ok {
		t.Fatalf("no time with the block enforced before release/end")
	}
	armed, err := res.ProbeStats(from, to)
	if err != nil {
		t.Fatalf("no probe samples while enforced: %v", err)
	}
	t.Logf("onset->trip %s, trip->enforced on all %d nodes %s; unrelated GET baseline %s; while enforced %s",
		tripAfter, res.Nodes, enforced, base, armed)
	// p99 within 2x of baseline. A baseline p99 of ~3 ms on a 2-core machine shared with other test suites is
	// noise-bound (single stalls of 5-50 ms are common), so the limit has a 25 ms floor: the unprotected incident
	// pushes p99 to 300-1000 ms here, so the check still separates a working guard from none by 10x or more.
	if limit := max(2*base.P99, 25*time.Millisecond); armed.P99 > limit {
		t.Fatalf("unrelated client's p99 while enforced %s > %s (2x baseline %s)", armed.P99, limit, base.P99)
	}
}
