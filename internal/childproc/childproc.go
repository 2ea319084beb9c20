package childproc

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a started child process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts bin with args in its own process group, its output to logPath, env added to this process's.
func Start(name, logPath string, env []string, bin string, args ...string) (*Proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM to the process group, SIGKILL after grace.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Pid())
	}
}

// WaitOK polls url until it answers 200, the process exits, or limit passes.
func (p *Proc) WaitOK(ctx context.Context, url string, limit time.Duration) error {
	err := PollHTTP(ctx, &http.Client{Timeout: time.Second}, url, limit, func() error {
		if p.Exited() {
			return fmt.Errorf("%s exited during start-up (see its log)", p.Name)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready: %w", p.Name, err)
	}
	return nil
}

// PollHTTP GETs url with hc every 200 ms until it answers 200 or limit passes; alive (optional) is asked before each
// try and its error ends the wait at once.
func PollHTTP(ctx context.Context, hc *http.Client, url string, limit time.Duration, alive func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		if alive != nil {
			if err := alive(); err != nil {
				return err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("poll %s: %w", url, err)
		}
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
			return fmt.Errorf("waited %s for %s: %w", limit, url, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
