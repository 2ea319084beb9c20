package saturation_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/fanoutguard"
	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/incident"
	"github.com/fanoutdev/fanout/e2e/latency"
	"github.com/fanoutdev/fanout/e2e/saturation"
	"github.com/fanoutdev/fanout/internal/testpriv"
)

const (
	loadUser   = "load-user"
	probeUser  = "probe-user"
	agentUser  = incident.AgentUserPrefix + "node-1"
	stageLen   = 15 * time.Second
	measureLen = 10 * time.Second // the last part of each stage, once the new client runs steadily
)

// rampClients is the ramp: on 2 cores the LIST throughput plateaus at one or two clients while the unrelated GET's
// p99 grows roughly linearly with the clients sharing the CPU (15-60 ms per client here), so the steps widen to reach
// the SLO in a bounded time on faster and slower machines alike.
var rampClients = []int{1, 2, 3, 4, 6, 8, 11, 16, 22, 30, 40, 52}

// TestEstimateWithinMeasuredSaturation ramps cluster-wide LIST clients (one pod each, on a simulated node with a real
// fanout-agent) against a real kube-apiserver until an unrelated normal user's GET p99 passes 1 s: the kernel-measured
// load at that stage and the most load any stage served bound the measured saturation load. The aggregator, told no
// capacity and reading the API server's /metrics as a normal RBAC user, must have learned a capacity within +-30% of
// that band by then.
func TestEstimateWithinMeasuredSaturation(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver, a fanout-agent and an aggregator, and ramps load until the API server saturates")
	}
	testpriv.Require(t, "the agent: BPF and cgroups")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	work := t.TempDir()
	agentBin, aggBin, err := fanoutguard.Build(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	podload, err := fleet.BuildPodload(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := harness.Start(ctx, harness.Config{
		Users:      []string{loadUser, probeUser, incident.AggregatorUser, agentUser},
		AuditUsers: []string{incident.AggregatorUser}, WorkDir: filepath.Join(work, "cp"), Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	for _, ns := range []string{"bulk", "load"} {
		if err := fleet.EnsureNamespace(ctx, admin, ns); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "probe-target"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	must(t, fleet.GrantClusterRead(ctx, admin, "e2e-read", []string{"pods", "configmaps"}, loadUser, probeUser))
	must(t, fleet.GrantRules(ctx, admin, "fanout-agent", incident.AgentRules(), agentUser))
	must(t, fleet.GrantRules(ctx, admin, "fanout-aggregator", incident.AggregatorRules(), incident.AggregatorUser))
	must(t, fleet.Seed(ctx, admin, fleet.SeedConfig{Namespace: "bulk", Pods: 2000}))

	fl, err := fleet.New(ctx, fleet.Config{Nodes: 1, PodloadBin: podload, LogDir: work, Logger: logger}, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	env := &incident.Env{ControlPlane: cp, Fleet: fl, AgentUser: agentUser, WorkDir: work, Logger: logger}
	if env.AgentKubeconfig, err = cp.WriteKubeconfig(agentUser); err != nil {
		t.Fatal(err)
	}
	must(t, incident.AggregatorFiles(cp, env))
	g := fanoutguard.New(fanoutguard.Config{
		AgentBin: agentBin, AggregatorBin: aggBin, DryRun: true, Logger: logger,
		AggregatorArgs: []string{ // no capacity flag: learned
			"--headroom.apiserver-url={apiserver}", "--headroom.token-file={apiserver-token}", "--headroom.ca-file={apiserver-ca}",
			"--fleet.warmup=5s",
		},
		AgentArgs: func(node, addr, token string) []string {
			return []string{"--aggregator.address=" + addr, "--aggregator.token-file=" + token}
		},
	})
	if err := g.Start(ctx, env); err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	lister, err := fleet.CreateDeployment(ctx, admin, "load", "lister")
	if err != nil {
		t.Fatal(err)
	}
	loadKC, err := cp.WriteKubeconfig(loadUser)
	if err != nil {
		t.Fatal(err)
	}
	probeCS := kubernetes.NewForConfigOrDie(cp.RESTConfig(probeUser))
	probe := latency.New(latency.Config{Interval: 100 * time.Millisecond, Timeout: 10 * time.Second}, func(ctx context.Context) error {
		_, err := probeCS.CoreV1().ConfigMaps("default").Get(ctx, "probe-target", metav1.GetOptions{})
		return err
	})
	pctx, pstop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); probe.Run(pctx) }()
	defer func() { pstop(); pwg.Wait() }()
	time.Sleep(10 * time.Second) // the aggregator's first scrapes: the API server at rest

	var stages []saturation.Stage
	running := 0
	for _, clients := range rampClients {
		for ; running < clients; running++ {
			if _, err := fl.StartPod(ctx, lister, fl.Nodes[0], fleet.PodSpec{Kubeconfig: loadKC, Args: []string{
				"--mode=list", "--resource=pods", "--decode=false", "--concurrency=1", "--timeout=30s", "--duration=10m",
			}}); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(stageLen):
		}
		to := time.Now()
		from := to.Add(-measureLen)
		st, err := latency.Summarize(probe.Between(from, to))
		if err != nil {
			t.Fatalf("stage %d: no probe samples: %v", clients, err)
		}
		s := saturation.Stage{Clients: clients, GetP99: st.P99}
		ms := g.Metrics()
		s.Requests = mean(find(ms, "fanout_workload_fleet_requests_per_second", lister.ID()), from, to)
		s.RxBytes = mean(find(ms, "fanout_workload_fleet_rx_bytes_per_second", lister.ID()), from, to)
		s.EstRequests = last(findEstimate(ms, "request"))
		s.EstRxBytes = last(findEstimate(ms, "byte"))
		s.EstUtilization = last(findSeries(ms, "fanout_headroom_utilization_ratio", `source="used"`))
		t.Logf("clients %2d: GET p99 %-10s kernel-measured %7.1f req/s %6.1f MB/s | estimate %7.1f req/s %6.1f MB/s, utilization %.2f (seats %.2f, latency %.2f), scrape ok %.0f",
			clients, st.P99.Round(time.Millisecond), s.Requests, s.RxBytes/1e6, s.EstRequests, s.EstRxBytes/1e6, s.EstUtilization,
			last(findSeries(ms, "fanout_headroom_utilization_ratio", `source="seats"`)),
			last(findSeries(ms, "fanout_headroom_utilization_ratio", `source="latency"`)),
			last(findSeries(ms, "fanout_headroom_scrape_success", "")))
		stages = append(stages, s)
		if st.P99 > saturation.SLO {
			break
		}
	}
	sat, err := saturation.Saturation(stages)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("measured saturation: %d LIST clients, %.1f req/s, %.1f MB/s (kernel-measured); estimate %.1f req/s, %.1f MB/s",
		sat.Clients, sat.Requests, sat.RxBytes/1e6, sat.EstRequests, sat.EstRxBytes/1e6)
	if counts, err := cp.AuditCounts(); err == nil && counts[incident.AggregatorUser] != nil {
		t.Logf("aggregator's own API requests over the test: %d (%v)", counts[incident.AggregatorUser].Total, counts[incident.AggregatorUser].ByVerb)
	}
	if sat.EstRequests == 0 && sat.EstRxBytes == 0 {
		var names []string
		for _, m := range g.Metrics() {
			names = append(names, m.Name)
		}
		t.Fatalf("the aggregator exposed no capacity estimate; recorded series: %s", strings.Join(names, ", "))
	}
	// Pushed past saturation, the server may serve less than its plateau (this machine: 2950 req/s at 16-22 clients,
	// 1902 at the breach with 40, in a make test run whose other packages share the 2 cores): the measured saturation load is the
	// band from the load at the breach to the most any stage served.
	peakReq, peakRx := saturation.Peak(stages)
	t.Logf("most load served by a stage up to the breach: %.1f req/s, %.1f MB/s", peakReq, peakRx/1e6)
	if !saturation.WithinBand(sat.EstRequests, sat.Requests, peakReq, 0.3) && // Peak includes the breach stage
		!saturation.WithinBand(sat.EstRxBytes, sat.RxBytes, peakRx, 0.3) {
		t.Fatalf("estimate not within +-30%% of the measured saturation load (at the breach .. the most served) in either unit: requests %.1f vs %.1f..%.1f, rx bytes %.3g vs %.3g..%.3g",
			sat.EstRequests, sat.Requests, peakReq, sat.EstRxBytes, sat.RxBytes, peakRx)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// find returns the series of metric whose workload label is workload.
func find(ms []incident.MetricSeries, metric, workload string) []incident.MetricPoint {
	want := fmt.Sprintf(`%s{workload=%q}`, metric, workload)
	for _, m := range ms {
		if m.Name == want || strings.HasPrefix(m.Name, metric+"{") && strings.Contains(m.Name, fmt.Sprintf(`workload=%q`, workload)) {
			return m.Points
		}
	}
	return nil
}

// findEstimate returns the aggregator's capacity estimate series in a unit (a name holding "capacity" and unit).
// The capacity's source is a label (none, then learned), so each source is its own series: the one with the latest
// point is the estimate now.
func findEstimate(ms []incident.MetricSeries, unit string) []incident.MetricPoint {
	var out []incident.MetricPoint
	for _, m := range ms {
		if strings.Contains(m.Name, "capacity") && strings.Contains(m.Name, unit) && len(m.Points) > 0 &&
			(len(out) == 0 || m.Points[len(m.Points)-1].At.After(out[len(out)-1].At)) {
			out = m.Points
		}
	}
	return out
}

// findSeries returns the first series of metric whose labels contain label ("" for any).
func findSeries(ms []incident.MetricSeries, metric, label string) []incident.MetricPoint {
	for _, m := range ms {
		if (m.Name == metric || strings.HasPrefix(m.Name, metric+"{")) && strings.Contains(m.Name, label) {
			return m.Points
		}
	}
	return nil
}

func mean(pts []incident.MetricPoint, from, to time.Time) float64 {
	var sum float64
	var n int
	for _, p := range pts {
		if !p.At.Before(from) && p.At.Before(to) {
			sum += p.Value
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

func last(pts []incident.MetricPoint) float64 {
	if len(pts) == 0 {
		return 0
	}
	return pts[len(pts)-1].Value
}
