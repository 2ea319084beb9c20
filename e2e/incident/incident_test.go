package incident

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/e2e/report"
	"github.com/fanoutdev/fanout/internal/testpriv"
)

// TestUnprotectedIncidentDegradesAPIServer replays the incident with no guard on a real kube-apiserver: the
// telemetry rollout must push the unrelated client's p99 beyond 2x its baseline. That is the bar the guarded e2e
// must keep under, so this test proves the load is real.
func TestUnprotectedIncidentDegradesAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver and a simulated fleet")
	}
	testpriv.Require(t, "the fleet's cgroups")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var live bytes.Buffer
	res, err := Run(ctx, Config{
		Nodes: 2, SeedPods: 2000, TelemetryWorkers: 8,
		Baseline: 4 * time.Second, Rollout: time.Second, Incident: 6 * time.Second, Recovery: 0,
		Live:   &live,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Log("\n" + live.String())
	if err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	res.WriteSummary(&sum)
	t.Log(sum.String())
	ph := res.Phases()
	if len(ph) != 2 || ph[0].Name != "baseline" || ph[1].Name != "incident" {
		t.Fatalf("phases %+v", ph)
	}
	base, inc := ph[0], ph[1]
	if base.Rate[Telemetry] != 0 || inc.Rate[Telemetry] < 1 {
		t.Fatalf("telemetry rate: baseline %.1f/s, incident %.1f/s", base.Rate[Telemetry], inc.Rate[Telemetry])
	}
	for _, id := range []string{KubeProxy, NodeAgent} {
		if base.Rate[id] <= 0 || inc.Rate[id] <= 0 {
			t.Fatalf("%s rate: baseline %.1f/s, incident %.1f/s", id, base.Rate[id], inc.Rate[id])
		}
	}
	if base.Probe.N < 20 || base.Probe.Errors != 0 || inc.Probe.N < 3 {
		t.Fatalf("probe: baseline %s, incident %s", base.Probe, inc.Probe)
	}
	if inc.Probe.P99 <= 2*base.Probe.P99 {
		t.Fatalf("unprotected incident did not degrade the API server: p99 %s -> %s", base.Probe.P99, inc.Probe.P99)
	}
	if !strings.Contains(live.String(), "ONSET") || !strings.Contains(live.String(), "t=") {
		t.Fatalf("live account lacks the onset or per-second lines")
	}
	var page bytes.Buffer
	if err := report.Write(&page, res.Report("unprotected")); err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"API calls per second by workload", "API calls refused or failed per second",
		"API server latency for an unrelated client", "CPU by process group"} {
		if !strings.Contains(page.String(), title) {
			t.Errorf("report lacks the chart %q", title)
		}
	}
	if n := strings.Count(page.String(), `<svg xmlns="http://www.w3.org/2000/svg" class="plot"`); n < 4 {
		t.Fatalf("report has %d charts, want rates, refusals, latency and CPU at least", n)
	}
	if c, ok := res.MeanCores(CPUAPIServer, res.Onset, res.IncidentEnd); !ok || c <= 0.05 {
		t.Fatalf("kube-apiserver CPU during the incident: %.2f cores (sampled %v)", c, ok)
	}
	if c, ok := res.MeanCores(CPUTelemetry, res.Onset, res.IncidentEnd); !ok || c <= 0 {
		t.Fatalf("telemetry pods' CPU during the incident: %.2f cores (sampled %v)", c, ok)
	}
}
