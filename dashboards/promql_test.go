package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/internal/loopbackport"
)

// panelExprs returns every PromQL expression in a generated dashboard JSON: panel targets and query variables.
func panelExprs(t *testing.T, path string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			if tg.Expr != "" {
				out[fmt.Sprintf("%s/%s#%d", filepath.Base(path), p.Title, i)] = tg.Expr
			}
		}
	}
	return out
}

// grafanaVars replaces the Grafana variables the panels use with what Grafana would send for "All".
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$workload", ".*")

func requirePrometheus(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("FANOUT_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("prometheus not found (Debian package prometheus): %v", err)
		}
		t.Skip("prometheus not installed (Debian package prometheus)")
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := loopbackport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startPrometheus runs a real Prometheus on a free loopback port scraping the given jobs (job name -> host:port)
// every second, with the project's alert rules loaded; it returns the base URL and stops the process on cleanup.
func startPrometheus(t *testing.T, jobs map[string]string) string {
	bin := requirePrometheus(t)
	dir := t.TempDir()
	rules, err := filepath.Abs("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - %s\nscrape_configs:\n", rules)
	names := make([]string, 0, len(jobs))
	for j := range jobs {
		names = append(names, j)
	}
	sort.Strings(names)
	for _, j := range names {
		fmt.Fprintf(&cfg, "  - job_name: %s\n    static_configs:\n      - targets: [%q]\n", j, jobs[j])
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("prometheus not ready: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type queryResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

func promQuery(base, expr string) (queryResult, error) {
	var r queryResult
	resp, err := http.PostForm(base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("decode response (HTTP %d): %w", resp.StatusCode, err)
	}
	return r, nil
}

// waitScrapes waits until every one of the jobs' targets is up and has been scraped at least n times, so rate() over
// the panels' window has points.
func waitScrapes(t *testing.T, base string, jobs, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := promQuery(base, fmt.Sprintf(`min(count_over_time(up[1m])) >= %d and count(up == 1) == %d`, n, jobs))
		if err == nil && len(r.Data.Result) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("targets not scraped in time: %+v %v", r, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// presentMetrics returns the fanout metric names (and up) Prometheus holds series for.
func presentMetrics(t *testing.T, base string) map[string]bool {
	t.Helper()
	present := map[string]bool{}
	r, err := promQuery(base, `count by (__name__) ({__name__=~"fanout_.+|up"})`)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range r.Data.Result {
		var s struct {
			Metric map[string]string `json:"metric"`
		}
		_ = json.Unmarshal(raw, &s)
		present[s.Metric["__name__"]] = true
	}
	return present
}

// panelQuery is one panel expression of a committed dashboard, evaluated at the current time.
type panelQuery struct {
	key, expr string // key: file/panel title#target index; expr with Grafana variables substituted
	results   int    // series in the instant-query result
	err       error  // transport error or a Prometheus error (parse, evaluation)
}

// runPanelQueries evaluates every panel expression of the dashboards in json/ against the Prometheus at base, in a
// stable order.
func runPanelQueries(t *testing.T, base string) []panelQuery {
	t.Helper()
	files, _ := filepath.Glob("json/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards in json/")
	}
	var out []panelQuery
	for _, file := range files {
		exprs := panelExprs(t, file)
		keys := make([]string, 0, len(exprs))
		for k := range exprs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			q := panelQuery{key: k, expr: grafanaVars.Replace(exprs[k])}
			r, err := promQuery(base, q.expr)
			switch {
			case err != nil:
				q.err = err
			case r.Status != "success":
				q.err = fmt.Errorf("%s: %s", r.ErrorType, r.Error)
			default:
				q.results = len(r.Data.Result)
			}
			out = append(out, q)
		}
	}
	return out
}

var metricName = regexp.MustCompile(`\b(fanout_[a-z_]+|up)\b`)

// TestPanelQueriesAgainstPrometheus runs every panel expression of the committed dashboards against a real Prometheus
// scraping exporters of the documented metric names: each must be accepted and return data. With
// FANOUT_DASHBOARD_TARGETS="fanout-agent=host:port,fanout-aggregator=host:port" it scrapes those real binaries
// instead, and requires data only for expressions whose metrics they export.
func TestPanelQueriesAgainstPrometheus(t *testing.T) {
	jobs := map[string]string{}
	realTargets := false
	if env := os.Getenv("FANOUT_DASHBOARD_TARGETS"); env != "" {
		for _, kv := range strings.Split(env, ",") {
			job, addr, ok := strings.Cut(kv, "=")
			if !ok {
				t.Fatalf("FANOUT_DASHBOARD_TARGETS: want job=host:port, got %q", kv)
			}
			jobs[job] = addr
		}
		realTargets = true
	} else {
		requirePrometheus(t)
		f := newFakeFleet(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go f.grow(ctx)
		jobs["fanout-agent"] = serve(t, f.agent)
		jobs["fanout-aggregator"] = serve(t, f.aggregator)
	}
	base := startPrometheus(t, jobs)

	waitScrapes(t, base, len(jobs), 3)
	present := presentMetrics(t, base)

	n := 0
	for _, q := range runPanelQueries(t, base) {
		n++
		if q.err != nil {
			t.Errorf("%s: %v\n  expr: %s", q.key, q.err, q.expr)
			continue
		}
		// The in-process exporter serves every documented series: all panels must have data. Real binaries may
		// not export a series yet (no trip, no block): require data only where its metrics exist.
		want := true
		for _, m := range metricName.FindAllString(q.expr, -1) {
			want = want && (present[m] || !realTargets)
		}
		if want && q.results == 0 {
			t.Errorf("%s: no data although its series exist\n  expr: %s", q.key, q.expr)
		}
	}
	// The alert rules are loaded too: Prometheus must report them healthy.
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil {
		t.Fatal(err)
	}
	rules := 0
	for _, g := range rr.Data.Groups {
		for _, r := range g.Rules {
			rules++
			if r.Health == "err" {
				t.Errorf("alert rule %s: %s", r.Name, r.LastError)
			}
		}
	}
	if rules == 0 {
		t.Error("prometheus loaded no alert rules")
	}
	t.Logf("%d panel queries checked against %s, %d alert rules loaded", n, base, rules)
}
