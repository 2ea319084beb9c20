package dashboards

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
)

// TestMain lets the test binary double as a "pod process" (enforcetest.StartClient re-executes it in a pod cgroup).
func TestMain(m *testing.M) {
	enforcetest.MaybeRunClient()
	os.Exit(m.Run())
}

// The real workload the test drives: a pod known to the agent from its kubelet log dir only (no API server).
const (
	realPodUID        = "5c0ffee0-d0d0-4a5b-9c8d-7e6f5a4b3c2d"
	realPodNS         = "default"
	realPodName       = "web-7d9f8-abcde"
	realWorkload      = "Pod/" + realPodNS + "/" + realPodName
	protectedWorkload = "Pod/" + realPodNS + "/fanout-canary"
	realAgentToken    = "dash-agent-token-0123456789"
	realAdminToken    = "dash-admin-token-9876543210"
	realStackNode     = "dash-node"
	realTrafficSpan   = 40 * time.Second // upper bound on client traffic; the test is done well before
)

// TestPanelQueriesAgainstRealBinaries builds fanout-agent, fanout-aggregator and fanoutctl, runs them against a
// kubelet-like cgroup tree with real HTTP/2 API traffic from a pod, trips the pod's workload by hand, lets a real
// Prometheus scrape both binaries, and evaluates every dashboard panel: each must be accepted, must reference only
// metric names the binaries contain, and must return data. A second hand trip of a workload the agent protects makes
// the refusal series exist, so no panel is expected to be empty in this setup.
func TestPanelQueriesAgainstRealBinaries(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	requirePrometheus(t)
	start := time.Now()

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./cmd/fanout-agent", "./cmd/fanout-aggregator", "./cmd/fanoutctl")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built binaries in %s", time.Since(start).Round(time.Millisecond))

	etc := t.TempDir()
	agentTokens := writeFile(t, etc, "agent-tokens", realAgentToken+" "+realStackNode+"\n")
	adminTokens := writeFile(t, etc, "admin-tokens", realAdminToken+"\n")
	agentToken := writeFile(t, etc, "agent-token", realAgentToken+"\n")
	adminToken := writeFile(t, etc, "admin-token", realAdminToken+"\n")

	// The API server's /metrics the aggregator reads for its headroom: a page recorded from the e2e kube-apiserver,
	// served on loopback.
	apiMetrics := recordedMetricsServer(t)
	apiToken := writeFile(t, etc, "apiserver-token", "metrics-reader-token\n")

	// Aggregator.
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	aggMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startProcess(t, "aggregator", filepath.Join(bin, "fanout-aggregator"),
		"--listen="+grpcAddr, "--metrics.listen="+aggMetrics, "--replica=dash",
		"--auth.agent-token-file="+agentTokens, "--auth.admin-token-file="+adminTokens, "--insecure",
		"--apiserver.capacity-requests-per-s=100000", "--apiserver.capacity-rx-bytes-per-s=1e9",
		// A protected list without */*/fanout*, unlike the agent's defaults: the aggregator trips the canary and the
		// agent refuses it, so the refusal series exist (the closed loop then frees the trip's slot).
		"--killswitch.protected=*/kube-system/coredns",
		"--headroom.apiserver-url="+apiMetrics, "--headroom.insecure-skip-verify", "--headroom.token-file="+apiToken,
		"--headroom.interval=1s",
		"--fleet.warmup=2s", "--fleet.surge-window=5s", "--directives.refresh=1s", "--log.level=warn")
	waitHTTP(t, "http://"+aggMetrics+"/metrics", 15*time.Second)

	// Node: kubelet-like cgroup tree, pod log dir, a loopback TLS HTTP/2 "API server".
	_, pods := enforcetest.NodeCgroup(t)
	_, ctr := enforcetest.PodCgroup(t, pods, realPodUID, "app")
	logs := t.TempDir()
	if err := os.Mkdir(filepath.Join(logs, realPodNS+"_"+realPodName+"_"+realPodUID), 0o755); err != nil {
		t.Fatal(err)
	}
	srv := enforcetest.StartServer(t, "127.0.0.1")
	pinDir := enforcetest.PinDir(t)

	agentWeb := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	agentBin := filepath.Join(bin, "fanout-agent")
	agentArgs := []string{"--node.name=" + realStackNode, "--cgroup.root=" + pods, "--bpf.pin-dir=" + pinDir,
		"--api.endpoints=" + srv.Addr.String(), "--api.discover=false", "--kubeconfig=", "--pod-logs.dir=" + logs,
		"--web.listen-address=" + agentWeb, "--aggregator.address=" + grpcAddr, "--aggregator.token-file=" + agentToken, "--insecure",
		"--aggregator.backoff-min=100ms", "--informer.start-jitter=0s", "--interval=500ms", "--log.level=warn"}
	agent := startProcess(t, "agent", agentBin, agentArgs...)
	// Runs before the pin dir's own cleanup (registered earlier): stop the agent, then uninstall its instance.
	t.Cleanup(func() {
		agent.stop(t)
		out, err := exec.Command(agentBin, append(agentArgs, "--uninstall")...).CombinedOutput()
		if err != nil {
			t.Errorf("fanout-agent --uninstall: %v\n%s", err, out)
		}
		if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
			t.Errorf("pin dir %s left after --uninstall (%v)", pinDir, err)
		}
	})
	waitHTTP(t, "http://"+agentWeb+"/healthz", 15*time.Second)

	// API traffic from inside the pod: a held watch (torn down on block) and fresh-connection GETs every 10 ms.
	for _, mode := range []string{enforcetest.ModeWatch, enforcetest.ModeProbe} {
		c := enforcetest.StartClient(t, ctr, mode, srv, realTrafficSpan)
		go func() {
			for range c.Events { // drain: the client blocks on a full stdout otherwise
			}
		}()
	}

	prom := startPrometheus(t, map[string]string{"fanout-agent": agentWeb, "fanout-aggregator": aggMetrics})

	// The aggregator must see the pod's traffic through the agent's reports before the trip.
	wl := []string{`workload="` + realWorkload + `"`}
	waitMetric(t, "http://"+aggMetrics+"/metrics", "fanout_workload_fleet_requests_per_second", wl,
		func(v float64) bool { return v > 0 }, 15*time.Second)

	// Trip the pod's workload, and a workload only the agent protects (*/*/fanout*) so its refusal is counted too.
	for _, w := range []string{realWorkload, protectedWorkload} {
		out, err := exec.Command(filepath.Join(bin, "fanoutctl"), "trip", "--aggregator="+grpcAddr,
			"--token-file="+adminToken, "--insecure", "--reason=dashboards test", w).CombinedOutput()
		if err != nil {
			t.Fatalf("fanoutctl trip %s: %v\n%s", w, err, out)
		}
		t.Logf("fanoutctl trip: %s", strings.TrimSpace(string(out)))
	}
	waitMetric(t, "http://"+agentWeb+"/metrics", "fanout_agent_blocks_active", wl,
		func(v float64) bool { return v >= 1 }, 10*time.Second)
	waitMetric(t, "http://"+agentWeb+"/metrics", "fanout_agent_connects_denied_total", wl,
		func(v float64) bool { return v >= 1 }, 10*time.Second)
	waitMetric(t, "http://"+agentWeb+"/metrics", "fanout_agent_block_refused_total",
		[]string{`workload="` + protectedWorkload + `"`}, func(v float64) bool { return v >= 1 }, 10*time.Second)

	// A few scrapes after the trip so the kill-switch counters have two points in the panels' rate window.
	time.Sleep(3 * time.Second)
	waitScrapes(t, prom, 2, 5)

	present := presentMetrics(t, prom)
	exposed := binaryMetricNames(t, filepath.Join(bin, "fanout-agent"), filepath.Join(bin, "fanout-aggregator"))
	// Self-check of the name scan: every fanout series Prometheus scraped must be found in the binaries.
	for m := range present {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} { // a histogram's series carry its name
			if base, ok := strings.CutSuffix(m, suffix); ok && exposed[base] {
				m = base
			}
		}
		if strings.HasPrefix(m, "fanout_") && !exposed[m] {
			t.Errorf("scraped metric %s not found in the binaries: binaryMetricNames is broken", m)
		}
	}
	if doc, err := os.ReadFile("../docs/interfaces.md"); err == nil {
		var undocumented []string
		for _, m := range documentedMetrics(string(doc)) {
			if !exposed[m] {
				undocumented = append(undocumented, m)
			}
		}
		if len(undocumented) > 0 {
			t.Logf("documented in docs/interfaces.md but in neither binary: %v", undocumented)
		}
	}
	n := 0
	for _, q := range runPanelQueries(t, prom) {
		n++
		if q.err != nil {
			t.Errorf("%s: %v\n  expr: %s", q.key, q.err, q.expr)
			continue
		}
		var missing, absent []string
		for _, m := range metricName.FindAllString(q.expr, -1) {
			if m != "up" && !exposed[m] {
				missing = append(missing, m)
			}
			if !present[m] {
				absent = append(absent, m)
			}
		}
		if len(missing) > 0 {
			t.Errorf("%s: metrics %v are exposed by neither fanout-agent nor fanout-aggregator\n  expr: %s", q.key, missing, q.expr)
		} else if q.results == 0 {
			t.Errorf("%s: no data from the real binaries (series not scraped: %v)\n  expr: %s", q.key, absent, q.expr)
		}
	}
	t.Logf("%d panel queries checked against real fanout-agent and fanout-aggregator in %s", n, time.Since(start).Round(time.Millisecond))
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type process struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// startProcess runs bin in its own process group with output captured; it is stopped (SIGTERM, then SIGKILL after
// 10 s) at cleanup, and its output logged when the test failed.
func startProcess(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	p := &process{name: name, cmd: exec.Command(bin, args...), log: &bytes.Buffer{}, done: make(chan struct{})}
	// The same comparable writer for both: exec then writes from one goroutine at a time.
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *process) stop(t *testing.T) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if t.Failed() && p.log.Len() > 0 {
		t.Logf("%s output:\n%s", p.name, p.log.String())
		p.log.Reset()
	}
}

func waitHTTP(t *testing.T, url string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %s: %v", url, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitMetric polls a /metrics endpoint until a sample of metric name carrying every label pair in labels (`k="v"`)
// satisfies ok.
func waitMetric(t *testing.T, url, name string, labels []string, ok func(float64) bool, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := "absent"
	for {
		if v, found := scrapeSample(url, name, labels); found {
			last = fmt.Sprint(v)
			if ok(v) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v at %s: %s after %s", name, labels, url, last, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func scrapeSample(url, name string, labels []string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		series := line[:sp]
		if n, _, _ := strings.Cut(series, "{"); n != name {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(series, l) {
				continue next
			}
		}
		var v float64
		if _, err := fmt.Sscan(line[sp+1:], &v); err == nil {
			return v, true
		}
	}
	return 0, false
}

// binaryMetricNames returns the fanout_* metric names compiled into the binaries. The binaries register every
// metric under a literal name, so a dashboard metric missing here can never be scraped from them.
func binaryMetricNames(t *testing.T, bins ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, b := range bins {
		raw, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range documentedNamesIn(raw) {
			out[m] = true
		}
	}
	return out
}

// documentedNamesIn returns which names used by the dashboards and docs occur in raw.
func documentedNamesIn(raw []byte) []string {
	doc, _ := os.ReadFile("../docs/interfaces.md")
	cands := map[string]bool{}
	for _, n := range documentedMetrics(string(doc)) {
		cands[n] = true
	}
	files, _ := filepath.Glob("json/*.json")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, m := range metricName.FindAllString(string(b), -1) {
			cands[m] = true
		}
	}
	var out []string
	for n := range cands {
		if bytes.Contains(raw, []byte(n)) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// recordedMetricsServer serves a kube-apiserver /metrics page recorded at rest over loopback TLS and returns its URL.
func recordedMetricsServer(t *testing.T) string {
	t.Helper()
	f, err := os.Open("../aggregator/apiserverstats/testdata/rest-a.prom.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" || r.Header.Get("Authorization") != "Bearer metrics-reader-token" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(page)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
