package fanoutguard

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Build builds fanout-agent and fanout-aggregator into dir (run inside the fanout module).
func Build(ctx context.Context, dir string) (agentBin, aggregatorBin string, err error) {
	agentBin, aggregatorBin = filepath.Join(dir, "fanout-agent"), filepath.Join(dir, "fanout-aggregator")
	for pkg, out := range map[string]string{
		"github.com/fanoutdev/fanout/cmd/fanout-agent":      agentBin,
		"github.com/fanoutdev/fanout/cmd/fanout-aggregator": aggregatorBin,
	} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("build %s: %w: %s", pkg, err, stderr.String())
		}
	}
	return agentBin, aggregatorBin, nil
}

// BuildFanoutctl builds fanoutctl into dir: the operator's CLI the guard releases workloads with.
func BuildFanoutctl(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "fanoutctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/fanoutdev/fanout/cmd/fanoutctl")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build fanoutctl: %w: %s", err, stderr.String())
	}
	return out, nil
}

// proc is a started child process, logging to a file, in its own process group.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func spawn(name, logPath, bin string, args ...string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
	}
}

// waitOK polls url until it answers 200, the process exits, or limit passes.
func waitOK(ctx context.Context, p *proc, url string, limit time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up", p.name)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %s: %v", p.name, url, limit, last)
}
