package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProgressEvery is how often a running control-plane build reports its progress.
const ProgressEvery = 30 * time.Second

// buildTool builds pkg in a fresh module described by gomod and moves the binary to dst atomically, reporting progress
// on stderr. Prefer buildToolLogged with the caller's logger.
func buildTool(ctx context.Context, gomod, pkg, dst string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "e2e-build")
	return buildToolLogged(ctx, logger, gomod, pkg, dst)
}

// buildToolLogged builds pkg in a fresh module described by gomod and moves the binary to dst atomically. It has no
// time limit of its own (ctx bounds it); every ProgressEvery it logs the elapsed time and how many packages the go
// command compiled so far out of the build's total. The Go build cache keeps every finished package, so a build that
// is interrupted resumes where it stopped.
func buildToolLogged(ctx context.Context, logger *slog.Logger, gomod, pkg, dst string) error {
	b := goBuild{logger: logger, every: ProgressEvery, name: filepath.Base(dst)}
	return b.run(ctx, gomod, pkg, dst)
}

// goBuild is one build of one tool.
type goBuild struct {
	logger *slog.Logger
	every  time.Duration
	name   string
}

func (b goBuild) run(ctx context.Context, gomod, pkg, dst string) error {
	start := time.Now()
	tmp, err := os.MkdirTemp("", "fanout-build-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "go.mod"), []byte(gomod), 0o644); err != nil {
		return fmt.Errorf("write go.mod: %w", err)
	}
	stop := b.every30(ctx, start, func() []any { return []any{"step", "resolving modules (go mod tidy; downloads on the first run)"} })
	_, err = goCmd(ctx, tmp, "mod", "tidy")
	stop()
	if err != nil {
		return b.explain(ctx, start, fmt.Errorf("go mod tidy: %w", err))
	}
	total := 0
	if out, err := goCmd(ctx, tmp, "list", "-deps", pkg); err == nil {
		total = len(strings.Fields(string(out)))
	} else if ctx.Err() != nil {
		return b.explain(ctx, start, err)
	}
	b.logger.Info("compiling", "tool", b.name, "packages", total,
		"note", "packages already in the Go build cache are not compiled again, so the count may end below the total")

	part := dst + ".part"
	_ = os.Remove(part)
	var count packageCounter
	stop = b.every30(ctx, start, func() []any {
		n := count.n()
		msg := []any{"step", "compiling", "packages compiled", n}
		if total > 0 {
			msg = append(msg, "of", total)
		}
		return msg
	})
	err = goStream(ctx, tmp, &count, "build", "-v", "-o", part, pkg)
	stop()
	if err != nil {
		return b.explain(ctx, start, fmt.Errorf("go build %s: %w", pkg, err))
	}
	if err := os.Rename(part, dst); err != nil {
		return fmt.Errorf("install %s: %w", dst, err)
	}
	b.logger.Info("built", "tool", b.name, "took", time.Since(start).Round(time.Second), "packages compiled", count.n(), "into", dst)
	return nil
}

// every30 logs "building" with fields() every b.every until the returned stop is called.
func (b goBuild) every30(ctx context.Context, start time.Time, fields func() []any) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(b.every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				args := append([]any{"tool", b.name, "elapsed", time.Since(start).Round(time.Second)}, fields()...)
				b.logger.Info("building", args...)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// explain turns a failed build into a message that says why it stopped and what the next run will do.
func (b goBuild) explain(ctx context.Context, start time.Time, err error) error {
	elapsed := time.Since(start).Round(time.Second)
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		return fmt.Errorf("build of %s stopped after %s: %w (nothing is wrong with the build itself; the Go build cache "+
			"keeps what was compiled, so running it again resumes): %w", b.name, elapsed, cause, err)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("build of %s was killed by signal %s after %s, not by fanout (out of memory? the "+
				"kube-apiserver build needs about 2.5 GB; run again to resume from the Go build cache): %w", b.name, ws.Signal(), elapsed, err)
		}
	}
	return fmt.Errorf("build of %s failed after %s: %w", b.name, elapsed, err)
}

// packageCounter counts the package import paths `go build -v` prints on stderr (one a line, as each is compiled) and
// keeps the other lines (compiler errors, downloads) for the error message.
type packageCounter struct {
	mu    sync.Mutex
	count int
	tail  []string
}

const tailLines = 60

func (c *packageCounter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

func (c *packageCounter) line(l string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if isImportPath(l) {
		c.count++
		return
	}
	c.tail = append(c.tail, l)
	if len(c.tail) > tailLines {
		c.tail = c.tail[len(c.tail)-tailLines:]
	}
}

func (c *packageCounter) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.tail, "\n")
}

// isImportPath reports whether a -v line names a package: one field, no "go:" or "#" prefix, no file:line.
func isImportPath(l string) bool {
	if l == "" || strings.ContainsAny(l, " \t:") || strings.HasPrefix(l, "#") {
		return false
	}
	return true
}

// goStream runs go with stderr fed line by line to c.
func goStream(ctx context.Context, dir string, c *packageCounter, args ...string) error {
	cmd := goCommand(ctx, dir, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			c.line(sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, c.output())
	}
	return nil
}

func goCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	// A build of a separate module must not inherit the caller's workspace or flags.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	return cmd
}

// goCmd runs go in dir and returns its stdout; on failure the error carries the end of its stderr.
func goCmd(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := goCommand(ctx, dir, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if len(msg) > 4000 {
			msg = msg[len(msg)-4000:]
		}
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}
