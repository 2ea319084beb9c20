package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/collector/probe"
	"github.com/fanoutdev/fanout/internal/testpriv"
)

// The agent end to end, in process: a kubelet-like cgroup tree, a pod known only from the pod log dir (no API
// server), a real HTTP/2 TLS client (this test binary re-executed into the pod's container cgroup) against a local
// "API server"; the agent's /metrics must show the pod's and its workload's traffic.

const clientEnv = "FANOUT_AGENT_TEST_CLIENT"

func TestMain(m *testing.M) {
	if os.Getenv(clientEnv) != "" {
		os.Exit(clientMain(os.Getenv(clientEnv)))
	}
	os.Exit(m.Run())
}

// clientMain does 10 HTTP/2 GETs on one connection (server cert not verified: loopback test server).
func clientMain(url string) int {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for range 10 {
		resp, err := c.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			return 1
		}
	}
	return 0
}

func requirePrivileged(t *testing.T) {
	t.Helper()
	testpriv.Require(t, "BPF and cgroups")
}

func TestConfigCheck(t *testing.T) {
	if _, err := parseFlags([]string{"--node.name=n1", "--api.endpoints=10.96.0.1:443,[fd00::1]:6443,192.0.2.1"}); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, bad := range [][]string{
		{"--node.name=n1", "--api.endpoints=10.96.0.1:99999"},
		{"--node.name=n1", "--api.endpoints=not-an-ip"},
		{"--node.name=n1", "--cgroup.root=/does/not/exist"},
		{"--node.name=n1", "--log.level=loud"},
		{"--node.name=n1", "--bpf.pin-dir=relative"},
		{"--node.name="},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%v: accepted", bad)
		}
	}
}

func TestAgentEndToEnd(t *testing.T) {
	requirePrivileged(t)
	mnt, err := cgroups.Cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	const uid = "6b1d2c3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e"
	base := filepath.Join(mnt, fmt.Sprintf("fanout-test-agent-%d", os.Getpid()))
	kubepods := filepath.Join(base, "kubepods")
	ctr := filepath.Join(kubepods, "besteffort", "pod"+uid, "app")
	if err := os.MkdirAll(ctr, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for p := ctr; strings.HasPrefix(p, base); p = filepath.Dir(p) {
			if err := os.Remove(p); err != nil {
				t.Errorf("remove cgroup: %v", err)
			}
		}
	})
	logs := t.TempDir()
	if err := os.Mkdir(filepath.Join(logs, "default_web-7d9f8-abcde_"+uid), 0o755); err != nil {
		t.Fatal(err)
	}

	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"kind":"PodList","items":[]}`)
	}))
	api.EnableHTTP2 = true
	api.StartTLS()
	defer api.Close()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	web := l.Addr().String()
	l.Close()
	pinDir := filepath.Join(probe.DefaultBPFFS, "fanout-test", fmt.Sprintf("agent-%d", os.Getpid()))
	cfg, err := parseFlags([]string{"--node.name=test-node", "--cgroup.root=" + kubepods, "--bpf.pin-dir=" + pinDir,
		"--api.endpoints=" + api.Listener.Addr().String(), "--web.listen-address=" + web, "--pod-logs.dir=" + logs,
		"--kubeconfig=", "--interval=200ms"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent run: %v", err)
		}
		// Pins survive the agent; --uninstall removes them.
		if _, err := os.Stat(filepath.Join(pinDir, "link_traffic_connect4")); err != nil {
			t.Errorf("link pin gone after shutdown: %v", err)
		}
		cfg.Uninstall = true
		if err := run(context.Background(), cfg, slog.New(slog.DiscardHandler)); err != nil {
			t.Errorf("uninstall: %v", err)
		}
		if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
			t.Errorf("pin dir left after uninstall: %v", err)
		}
		os.Remove(filepath.Dir(pinDir)) // shared test parent, when empty
	})

	waitFor(t, 10*time.Second, func() bool {
		resp, err := http.Get("http://" + web + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	cg, err := os.Open(ctr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientEnv+"="+api.URL)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("client: %v", err)
	}
	cg.Close()

	podLabels := `{namespace="default",pod="web-7d9f8-abcde",uid="`+uid+`",workload="Pod/default/web-7d9f8-abcde"}`
	var metrics map[string]float64
	waitFor(t, 10*time.Second, func() bool {
		metrics = scrape(t, "http://"+web+"/metrics")
		return metrics["fanout_pod_api_requests_total"+podLabels] >= 10
	})
	if got := metrics["fanout_pod_api_connects_total"+podLabels]; got != 1 {
		t.Errorf("connects %v, want 1 (one HTTP/2 connection)", got)
	}
	if got := metrics["fanout_pod_api_rx_bytes_total"+podLabels]; got < 10*30 {
		t.Errorf("rx bytes %v, want >= 300", got)
	}
	if got := metrics[`fanout_workload_api_requests_total{workload="Pod/default/web-7d9f8-abcde"}`]; got < 10 {
		t.Errorf("workload requests %v", got)
	}
	if got := metrics[`fanout_agent_map_max_entries{map="traffic_counters"}`]; got != 16384 {
		t.Errorf("map max entries %v", got)
	}
	if metrics["fanout_agent_scrape_success"] != 1 {
		t.Error("scrape not successful")
	}
}

func waitFor(t *testing.T, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func scrape(t *testing.T, url string) map[string]float64 {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		line := s.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func TestConfigCheckValidatesAggregatorSettings(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("agent-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--node.name=n1", "--aggregator.address=127.0.0.1:9401", "--insecure"}
	if _, err := parseFlags(append(base, "--aggregator.token-file="+tok)); err != nil {
		t.Fatalf("valid aggregator settings rejected: %v", err)
	}
	if _, err := parseFlags(append(base, "--aggregator.token-file="+tok, "--aggregator.merge=most")); err == nil || !strings.Contains(err.Error(), "merge") {
		t.Fatalf("bad merge mode: want an error naming merge, got %v", err)
	}
	if _, err := parseFlags(append(base, "--aggregator.token-file="+filepath.Join(dir, "missing"))); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("missing token file: want an error naming the token, got %v", err)
	}
}
