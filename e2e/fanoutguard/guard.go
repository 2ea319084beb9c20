package fanoutguard

import (
	"github.com/fanoutdev/fanout/internal/childproc"

	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/incident"
)

// Config of the guard.
type Config struct {
	AgentBin, AggregatorBin string
	// DryRun starts the aggregator with --killswitch.dry-run: it decides and audits but blocks nothing.
	DryRun bool
	// FanoutctlBin is the operator CLI: with it, Release runs `fanoutctl release` against the aggregator with an
	// admin token (the aggregator gets --auth.admin-token-file). Empty: Release is refused.
	FanoutctlBin string
	// NoAggregator runs agents only (counting and metrics), e.g. to check attribution.
	NoAggregator bool
	// AggregatorArgs are extra aggregator flags (detector thresholds for a small fleet, ramp lengths). In each,
	// {apiserver} is replaced by the API server's URL, {apiserver-token} by a file holding the aggregator user's
	// bearer token (RBAC: GET /metrics, list/watch the workload kinds), {apiserver-ca} by the API server's CA file
	// and {kubeconfig} by that user's kubeconfig: how the aggregator reads the API server is its own flag set.
	AggregatorArgs []string
	// AgentArgs returns extra flags for one node's agent, given the aggregator's gRPC address and that node's token
	// file: how an agent reaches the aggregator is the agent's own flag set.
	AgentArgs func(node, aggregatorAddr, tokenFile string) []string
	// PinPrefix names the agents' BPF pin dirs: /sys/fs/bpf/fanout/<PinPrefix><node>. Default "e2e-<pid>-<random>-".
	PinPrefix string
	// ProbeMode, when set, is the traffic probe design every agent must run (fanout_agent_probe_mode): Start fails
	// when an agent fell back to another one, so a run never reports figures of a design it did not measure.
	ProbeMode string
	// Poll is how often agents' metrics and the audit log are read for events (default 100 ms).
	Poll   time.Duration
	Logger *slog.Logger
}

// Guard is fanout running over a simulated fleet.
type Guard struct {
	cfg    Config
	logger *slog.Logger

	aggregator        *childproc.Proc
	aggregatorAddr    string
	aggregatorMetrics string
	series            []incident.MetricSeries
	seriesIdx         map[string]int
	auditPath         string
	adminTokenFile    string
	agents            []*agentProc

	mu     sync.Mutex
	events []incident.Event
	stop   context.CancelFunc
	polled sync.WaitGroup
	closed bool
}

type agentProc struct {
	node, pinDir, metricsURL string
	proc                     *childproc.Proc
	active                   map[string]bool // workloads with blocks_active > 0, as last polled
}

var (
	_ incident.Guard    = (*Guard)(nil)
	_ incident.Releaser = (*Guard)(nil)
	_ incident.Metered  = (*Guard)(nil)
)

// New returns a guard; nothing runs until Start.
func New(cfg Config) *Guard {
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.PinPrefix == "" {
		cfg.PinPrefix = fmt.Sprintf("e2e-%d-%s-", os.Getpid(), randomToken()[:6]) // unique per guard, even in one process
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Guard{cfg: cfg, logger: cfg.Logger.With("component", "fanoutguard"), seriesIdx: map[string]int{}}
}

// Start launches the aggregator, then one agent per node, and waits for all of them to be healthy.
func (g *Guard) Start(ctx context.Context, env *incident.Env) error {
	dir := filepath.Join(env.WorkDir, "fanout")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("guard dir: %w", err)
	}
	tokens := map[string]string{}
	var tokenLines strings.Builder
	for _, n := range env.Fleet.Nodes {
		tokens[n.Name] = randomToken()
		fmt.Fprintf(&tokenLines, "%s %s\n", tokens[n.Name], n.Name)
	}
	if !g.cfg.NoAggregator {
		if err := g.startAggregator(ctx, env, dir, tokenLines.String()); err != nil {
			return err
		}
	}
	endpoint := fmt.Sprintf("127.0.0.1:%d", env.ControlPlane.Port)
	for _, n := range env.Fleet.Nodes {
		kc, err := env.ControlPlane.WriteKubeconfig(incident.AgentUserPrefix + n.Name)
		if err != nil {
			return err
		}
		port, err := harness.FreePort()
		if err != nil {
			return err
		}
		tokenFile := filepath.Join(dir, "agent-token-"+n.Name)
		if err := os.WriteFile(tokenFile, []byte(tokens[n.Name]+"\n"), 0o600); err != nil {
			return fmt.Errorf("write agent token: %w", err)
		}
		a := &agentProc{node: n.Name, pinDir: filepath.Join("/sys/fs/bpf/fanout", g.cfg.PinPrefix+n.Name),
			metricsURL: fmt.Sprintf("http://127.0.0.1:%d", port), active: map[string]bool{}}
		args := []string{
			"--node.name=" + n.Name, "--cgroup.root=" + n.KubepodsDir, "--bpf.pin-dir=" + a.pinDir,
			"--api.endpoints=" + endpoint, "--kubeconfig=" + kc, "--web.listen-address=" + a.metricsURL[len("http://"):],
			"--informer.start-jitter=1s", "--pod-logs.dir=" + filepath.Join(dir, "no-pod-logs"), "--log.level=info",
			"--insecure", // loopback only: the token travels in plaintext (the binaries refuse that without this flag)
		}
		if g.cfg.AgentArgs != nil && !g.cfg.NoAggregator {
			args = append(args, g.cfg.AgentArgs(n.Name, g.aggregatorAddr, tokenFile)...)
		}
		p, err := childproc.Start("fanout-agent "+n.Name, filepath.Join(dir, "agent-"+n.Name+".log"), nil, g.cfg.AgentBin, args...)
		if err != nil {
			return err
		}
		a.proc = p
		g.agents = append(g.agents, a)
	}
	for _, a := range g.agents {
		if err := a.proc.WaitOK(ctx, a.metricsURL+"/healthz", 30*time.Second); err != nil {
			return err
		}
	}
	if err := g.checkProbeMode(ctx); err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	g.polled.Add(1)
	go func() { defer g.polled.Done(); g.poll(pctx) }()
	g.logger.Info("fanout running", "agents", len(g.agents), "aggregator", g.aggregatorAddr, "dry_run", g.cfg.DryRun)
	return nil
}

func (g *Guard) startAggregator(ctx context.Context, env *incident.Env, dir, tokenLines string) error {
	tokenFile := filepath.Join(dir, "agent-tokens")
	if err := os.WriteFile(tokenFile, []byte(tokenLines), 0o600); err != nil {
		return fmt.Errorf("write aggregator token file: %w", err)
	}
	grpcPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	metricsPort, err := harness.FreePort()
	if err != nil {
		return err
	}
	g.aggregatorAddr = fmt.Sprintf("127.0.0.1:%d", grpcPort)
	g.auditPath = filepath.Join(dir, "decisions.jsonl")
	args := []string{
		"--listen=" + g.aggregatorAddr, fmt.Sprintf("--metrics.listen=127.0.0.1:%d", metricsPort),
		"--auth.agent-token-file=" + tokenFile, "--audit.file=" + g.auditPath, "--replica=e2e",
		"--insecure", // loopback only: tokens over plaintext gRPC
	}
	if g.cfg.FanoutctlBin != "" {
		g.adminTokenFile = filepath.Join(dir, "admin-tokens")
		if err := os.WriteFile(g.adminTokenFile, []byte(randomToken()+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin token file: %w", err)
		}
		args = append(args, "--auth.admin-token-file="+g.adminTokenFile)
	}
	if g.cfg.DryRun {
		args = append(args, "--killswitch.dry-run")
	}
	sub := strings.NewReplacer("{apiserver}", env.ControlPlane.URL, "{apiserver-token}", env.AggregatorTokenFile,
		"{apiserver-ca}", env.CAFile, "{kubeconfig}", env.AggregatorKubeconfig)
	for _, a := range g.cfg.AggregatorArgs {
		args = append(args, sub.Replace(a))
	}
	g.aggregatorMetrics = fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	p, err := childproc.Start("fanout-aggregator", filepath.Join(dir, "aggregator.log"), nil, g.cfg.AggregatorBin, args...)
	if err != nil {
		return err
	}
	g.aggregator = p
	return p.WaitOK(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort), 30*time.Second)
}

// poll turns the audit log and the agents' block metrics into events until stopped.
func (g *Guard) poll(ctx context.Context) {
	var auditOff int64
	var lastScrape time.Time
	hc := &http.Client{Timeout: 2 * time.Second}
	t := time.NewTicker(g.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if g.auditPath != "" {
			auditOff = g.readAudit(auditOff)
		}
		if g.aggregatorMetrics != "" && time.Since(lastScrape) >= time.Second {
			lastScrape = time.Now()
			if err := g.scrapeAggregator(ctx, hc); err != nil {
				g.logger.Debug("scrape aggregator", "err", err) // a slow scrape leaves a gap in the plot
			}
		}
		for _, a := range g.agents {
			active, err := blocksActive(ctx, hc, a.metricsURL+"/metrics")
			if err != nil {
				continue // a slow scrape; the next poll catches up
			}
			now := time.Now()
			for w := range active {
				if !a.active[w] {
					g.add(incident.Event{At: now, Kind: "enforced", Workload: w, Node: a.node})
				}
			}
			for w := range a.active {
				if !active[w] {
					g.add(incident.Event{At: now, Kind: "released", Workload: w, Node: a.node})
				}
			}
			a.active = active
		}
	}
}

func (g *Guard) readAudit(off int64) int64 {
	f, err := os.Open(g.auditPath)
	if err != nil {
		return off
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return off // a partial line waits for the next poll
		}
		off += int64(len(line))
		var rec struct {
			Time     time.Time `json:"time"`
			Action   string    `json:"action"`
			Workload string    `json:"workload"`
			Reason   string    `json:"reason"`
			DryRun   bool      `json:"dry_run"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Action == "" {
			continue
		}
		detail := rec.Reason
		if rec.DryRun && !strings.HasPrefix(detail, "dry-run") {
			detail = "dry-run: " + detail
		}
		g.add(incident.Event{At: rec.Time, Kind: rec.Action, Workload: rec.Workload, Detail: detail})
	}
}

var blocksRe = regexp.MustCompile(`^fanout_agent_blocks_active\{[^}]*workload="([^"]*)"[^}]*\}\s+(\S+)`)

// blocksActive scrapes an agent's metrics for workloads it currently blocks.
func blocksActive(ctx context.Context, hc *http.Client, url string) (map[string]bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	out := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		m := blocksRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if v, err := strconv.ParseFloat(m[2], 64); err == nil && v > 0 {
			out[m[1]] = true
		}
	}
	return out, sc.Err()
}

// checkProbeMode reads every agent's fanout_agent_probe_mode and, with Config.ProbeMode set, fails unless each runs
// that design.
func (g *Guard) checkProbeMode(ctx context.Context) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	modes := map[string]int{}
	for _, a := range g.agents {
		text, err := scrapeText(ctx, hc, a.metricsURL+"/metrics")
		if err != nil {
			return fmt.Errorf("probe mode of agent %s: %w", a.node, err)
		}
		mode := probeModeOf(text)
		if g.cfg.ProbeMode != "" && mode != g.cfg.ProbeMode {
			return fmt.Errorf("agent %s runs the %q traffic probe, want %q (see its log: the kernel lacks a feature?)",
				a.node, mode, g.cfg.ProbeMode)
		}
		modes[mode]++
	}
	g.logger.Info("traffic probe", "modes", modes)
	return nil
}

// probeModeOf returns the mode label of the fanout_agent_probe_mode series whose value is 1 ("" when none).
func probeModeOf(metrics string) string {
	for _, line := range strings.Split(metrics, "\n") {
		rest, ok := strings.CutPrefix(line, `fanout_agent_probe_mode{mode="`)
		if !ok {
			continue
		}
		mode, val, ok := strings.Cut(rest, `"} `)
		if ok && strings.TrimSpace(val) == "1" {
			return mode
		}
	}
	return ""
}

func scrapeText(ctx context.Context, hc *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return string(b), nil
}

// Scrape returns one agent's metrics text (tests and the demo read counters from it).
func (g *Guard) Scrape(ctx context.Context, node string) (string, error) {
	for _, a := range g.agents {
		if a.node == node {
			text, err := scrapeText(ctx, &http.Client{Timeout: 5 * time.Second}, a.metricsURL+"/metrics")
			if err != nil {
				return "", fmt.Errorf("scrape agent %s: %w", node, err)
			}
			return text, nil
		}
	}
	return "", fmt.Errorf("no agent for node %s", node)
}

// Release is the operator's manual release: `fanoutctl release --aggregator=<grpc> --token-file=<admin token>
// --reason=<reason> <workload>`, the CLI's output returned. The ramp is the aggregator's (--killswitch.ramp-*): the
// directive carries it to every agent.
func (g *Guard) Release(ctx context.Context, workload, reason string) (string, error) {
	if g.cfg.FanoutctlBin == "" || g.aggregatorAddr == "" {
		return "", errors.New("release: no fanoutctl or no aggregator")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, g.cfg.FanoutctlBin, "release", "--aggregator="+g.aggregatorAddr,
		"--token-file="+g.adminTokenFile, "--insecure", "--reason="+reason, workload).CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("fanoutctl release %s: %w: %s", workload, err, text)
	}
	return text, nil
}

func (g *Guard) add(e incident.Event) {
	g.mu.Lock()
	g.events = append(g.events, e)
	g.mu.Unlock()
}

// Events returns all events so far.
func (g *Guard) Events() []incident.Event {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]incident.Event(nil), g.events...)
}

// Close stops the poller, every agent and the aggregator (by PID), then uninstalls each agent instance.
func (g *Guard) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.mu.Unlock()
	if g.stop != nil {
		g.stop()
		g.polled.Wait()
	}
	var errs []error
	for _, a := range g.agents {
		errs = append(errs, a.proc.Stop(10*time.Second))
	}
	if g.aggregator != nil {
		errs = append(errs, g.aggregator.Stop(10*time.Second))
	}
	for _, a := range g.agents {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, g.cfg.AgentBin, "--uninstall", "--node.name="+a.node, "--bpf.pin-dir="+a.pinDir).CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("uninstall agent %s: %w: %s", a.node, err, out))
		}
	}
	return errors.Join(errs...)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
