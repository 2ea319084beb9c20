package fanoutguard

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/e2e/incident"
	"github.com/fanoutdev/fanout/internal/testpriv"
)

// TestIncidentArmed is the e2e of issue 5: the incident replayed on a real API server with a few simulated nodes,
// each with a real fanout-agent, and a real aggregator. The telemetry DaemonSet must be tripped, the block must reach
// every node, the system DaemonSets must be untouched, and once enforced the unrelated client's p99 must stay within
// 2x its baseline.
func TestIncidentArmed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver, a simulated fleet, fanout agents and an aggregator")
	}
	testpriv.Require(t, "agents: BPF and cgroups")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	work := t.TempDir()
	agentBin, aggBin, err := Build(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	ctlBin, err := BuildFanoutctl(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g := New(Config{
		AgentBin: agentBin, AggregatorBin: aggBin, FanoutctlBin: ctlBin, Logger: logger,
		AggregatorArgs: []string{
			// No capacity flag: the aggregator learns the API server's headroom from its /metrics.
			"--headroom.apiserver-url={apiserver}", "--headroom.token-file={apiserver-token}", "--headroom.ca-file={apiserver-ca}",
			// The baseline lasts 10 s: read the API server every 2 s so that its latency baselines are warm by the onset.
			"--headroom.interval=2s",
			"--fleet.warmup=5s",
			"--killswitch.overload-sustain=3s", "--killswitch.min-hold=15s",
			// One telemetry pod per node: the release places each node in a ramp step by a stable hash of its name
			// (api/ramp), so even a DaemonSet comes back over the ramp; the jitter is the default. The min-hold
			// outlasts the manual release (no automatic release first).
			"--killswitch.ramp-duration=10s", "--killswitch.ramp-steps=4",
			"--killswitch.protected=" + incident.KubeProxy + "," + incident.NodeAgent,
		},
		AgentArgs: func(node, addr, token string) []string {
			return []string{"--aggregator.address=" + addr, "--aggregator.token-file=" + token}
		},
		ProbeMode: "sockops",
	})
	var live bytes.Buffer
	res, err := incident.Run(ctx, incident.Config{
		Nodes: 3, SeedPods: 2000, TelemetryWorkers: 8, Mode: "armed",
		Baseline: 10 * time.Second, Rollout: 2 * time.Second, Incident: 15 * time.Second, Recovery: 25 * time.Second,
		Rollback: true, ReleaseAfter: 3 * time.Second,
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
	// noise-bound (single stalls of 5-50 ms are common; with ~110 samples the p99 is the second slowest, and a run
	// under make test's parallel packages measured 26.8 ms), so the limit has a 50 ms floor: the unprotected incident
	// pushes p99 to 300-1000 ms here, so the check still separates a working guard from none by 6x or more.
	limit := max(2*base.P99, 50*time.Millisecond)
	if armed.P99 > limit {
		t.Fatalf("unrelated client's p99 while enforced %s > %s (2x baseline %s)", armed.P99, limit, base.P99)
	}

	// The operator rolled the DaemonSet back and released it by hand (fanoutctl release): every node re-admits its
	// pod, at more than one moment (node-1..3 fall in ramp steps 2, 2 and 0 of 4 by their names' hash), and the
	// unrelated client sees no recovery herd.
	rel, ok := res.Release()
	if !ok {
		t.Fatalf("no release of %s after its trip (fanoutctl said %q); events %+v", incident.Telemetry, res.ReleaseOutput, res.Events)
	}
	if !strings.Contains(rel.Detail, "manual") {
		t.Fatalf("release was not the operator's: %q", rel.Detail)
	}
	if len(rel.Readmitted) != res.Nodes {
		t.Fatalf("%d of %d nodes re-admitted after the release; events %+v", len(rel.Readmitted), res.Nodes, res.Events)
	}
	if rel.Steps < 2 {
		t.Fatalf("release not gradual: %d nodes re-admitted in %d step over %s", len(rel.Readmitted), rel.Steps, rel.Span)
	}
	during, err := res.ProbeStats(rel.At, rel.Readmitted[len(rel.Readmitted)-1].At.Add(time.Second))
	if err != nil {
		t.Fatalf("no probe samples during the release: %v", err)
	}
	t.Logf("release at t=%s: %d nodes re-admitted in %d steps over %s; unrelated GET during release %s",
		rel.At.Sub(res.Start), len(rel.Readmitted), rel.Steps, rel.Span, during)
	if during.P99 > limit {
		t.Fatalf("unrelated client's p99 during the release %s > %s (recovery herd?)", during.P99, limit)
	}
}
