package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// runExec is mode exec: --concurrency loops, each running cfg.command to completion again and again until the
// duration ends. A run that exits 0 is one successful call; a failed run is denied when its stderr says the
// connection was refused locally or torn down (fanout's kill switch), else an error, and the loop backs off like a
// shell loop with a retry sleep would.
func runExec(cfg config) error {
	if len(cfg.command) == 0 {
		return errors.New(`mode exec needs a command after "--"`)
	}
	if cfg.concurrency < 1 || cfg.concurrency > 64 {
		return errors.New("--concurrency must be in [1, 64] in mode exec")
	}
	if cfg.duration <= 0 || cfg.duration > time.Hour {
		return fmt.Errorf("--duration %s out of range (0, 1h]", cfg.duration)
	}
	if _, err := exec.LookPath(cfg.command[0]); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	home, err := os.MkdirTemp("", "podload-home-")
	if err != nil {
		return fmt.Errorf("private home: %w", err)
	}
	defer os.RemoveAll(home)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var c counters
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Add(1)
		go func() { defer wg.Done(); execLoop(ctx, cfg, home, &c) }()
	}
	return report(ctx, cfg, &c, &wg)
}

func execLoop(ctx context.Context, cfg config, home string, c *counters) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		n, err := execOnce(ctx, cfg, home)
		if ctx.Err() != nil {
			return // a run cut short by the end of the pod is not a failure of the tool
		}
		c.record(0, int(n), err)
		if err == nil {
			backoff = 50 * time.Millisecond
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// execOnce runs the command once, bounded by --timeout, and returns its stdout size. The child gets its own process
// group so a timeout kills whatever it started too.
func execOnce(ctx context.Context, cfg config, home string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cfg.command[0], cfg.command[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out countWriter
	var stderr tailWriter
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.n, errors.New(msg)
	}
	return out.n, nil
}

// countWriter discards what it is given and counts it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// tailWriter keeps the last 1 KiB written: enough for an error line, bounded whatever the tool prints.
type tailWriter struct{ b []byte }

const tailMax = 1024

func (w *tailWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	if len(w.b) > tailMax {
		w.b = append(w.b[:0], w.b[len(w.b)-tailMax:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return string(bytes.ToValidUTF8(w.b, nil)) }

var _ io.Writer = (*tailWriter)(nil)
