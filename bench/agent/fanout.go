package main

import (
	"github.com/fanoutdev/fanout/internal/childproc"

	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
)

// aggregator is the real fanout-aggregator the agent reports to.
type aggregator struct {
	proc       *childproc.Proc
	addr       string // gRPC
	metricsURL string
	auditFile  string
	token      string // the node's agent token
}

func startAggregator(ctx context.Context, work, bin string) (*aggregator, error) {
	grpcPort, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	a := &aggregator{addr: fmt.Sprintf("127.0.0.1:%d", grpcPort), metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		auditFile: filepath.Join(work, "decisions.jsonl"), token: randomToken()}
	tokens := filepath.Join(work, "agent-tokens")
	if err := os.WriteFile(tokens, []byte(a.token+" "+node+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write aggregator token file: %w", err)
	}
	a.proc, err = childproc.Start("fanout-aggregator", filepath.Join(work, "aggregator.log"), nil, bin,
		"--listen="+a.addr, fmt.Sprintf("--metrics.listen=127.0.0.1:%d", metricsPort), "--auth.agent-token-file="+tokens,
		"--audit.file="+a.auditFile, "--replica=bench", "--log.level=info",
		"--killswitch.dry-run", // a load window is a surge from the idle window before it: decide and audit, never block
		"--insecure",           // loopback only: the agent's token over plaintext gRPC
	)
	if err != nil {
		return nil, err
	}
	if err := a.proc.WaitOK(ctx, a.metricsURL, 30*time.Second); err != nil {
		return nil, errors.Join(err, a.proc.Stop(5*time.Second))
	}
	return a, nil
}

// agent is the real fanout-agent under measurement.
type agent struct {
	proc       *childproc.Proc
	bin        string
	pinDir     string
	metricsURL string
	logFile    string
	mode       string
}

func startAgent(ctx context.Context, cp *harness.ControlPlane, n *fleet.Node, work, bin, stubAddr string, agg *aggregator, memLimit string, extra ...string) (*agent, error) {
	kc, err := cp.WriteKubeconfig(agentUser)
	if err != nil {
		return nil, err
	}
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(work, "agent-token")
	if err := os.WriteFile(tokenFile, []byte(agg.token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write agent token: %w", err)
	}
	a := &agent{bin: bin, pinDir: filepath.Join("/sys/fs/bpf/fanout", fmt.Sprintf("bench-%d", os.Getpid())),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d", port), logFile: filepath.Join(work, "agent.log")}
	args := []string{
		"--node.name=" + n.Name, "--cgroup.root=" + n.KubepodsDir, "--bpf.pin-dir=" + a.pinDir,
		"--api.endpoints=" + stubAddr + fmt.Sprintf(",127.0.0.1:%d", cp.Port), "--kubeconfig=" + kc,
		"--web.listen-address=" + a.metricsURL[len("http://"):], "--informer.start-jitter=1s",
		"--pod-logs.dir=" + filepath.Join(work, "no-pod-logs"), "--log.level=info",
		"--aggregator.address=" + agg.addr, "--aggregator.token-file=" + tokenFile,
		"--insecure", // loopback only: the token travels in plaintext (the binaries refuse that without this flag)
	}
	args = append(args, extra...)
	var env []string
	if memLimit != "" {
		env = append(env, "GOMEMLIMIT="+memLimit)
	}
	if a.proc, err = childproc.Start("fanout-agent", a.logFile, env, bin, args...); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = a.stopAndUninstall()
		}
	}()
	if err := a.proc.WaitOK(ctx, a.metricsURL+"/healthz", 30*time.Second); err != nil {
		return nil, err
	}
	s, err := scrapeMetrics(ctx, a.metricsURL+"/metrics")
	if err != nil {
		return nil, err
	}
	if a.mode = s.probeMode(); a.mode == "" {
		return nil, fmt.Errorf("agent exports no fanout_agent_probe_mode (log %s)", a.logFile)
	}
	ok = true
	return a, nil
}

// stopAndUninstall stops the agent (by PID) and removes its pinned programs and maps with `fanout-agent --uninstall`.
func (a *agent) stopAndUninstall() error {
	errs := []error{a.proc.Stop(10 * time.Second)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, a.bin, "--uninstall", "--node.name="+node, "--bpf.pin-dir="+a.pinDir).CombinedOutput()
	if err != nil {
		errs = append(errs, fmt.Errorf("uninstall agent: %w: %s", err, out))
	}
	return errors.Join(errs...)
}
