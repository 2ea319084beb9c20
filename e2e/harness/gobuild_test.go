package harness

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPackageCounter(t *testing.T) {
	var c packageCounter
	for _, l := range []string{
		"internal/goarch", "k8s.io/apimachinery/pkg/util/sets", "go: downloading k8s.io/api v0.37.2",
		"# k8s.io/kubernetes/pkg/foo", "pkg/foo/bar.go:12:3: undefined: x", "", "runtime",
	} {
		c.line(l)
	}
	if c.n() != 3 {
		t.Fatalf("counted %d packages, want 3", c.n())
	}
	if out := c.output(); !strings.Contains(out, "undefined: x") || strings.Contains(out, "internal/goarch") {
		t.Fatalf("kept output %q", out)
	}
}

// syncBuffer is a log sink the progress goroutine and the test can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestBuildToolProgress builds a real (small, standard-library) tool through the same path as kube-apiserver and
// checks that progress lines come at the configured interval and the binary lands at dst.
func TestBuildToolProgress(t *testing.T) {
	var logs syncBuffer
	b := goBuild{logger: slog.New(slog.NewTextHandler(&logs, nil)), every: 20 * time.Millisecond, name: "gofmt"}
	dst := filepath.Join(t.TempDir(), "gofmt")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := b.run(ctx, "module example.com/buildtest\n\ngo 1.26\n", "cmd/gofmt", dst); err != nil {
		t.Fatal(err)
	}
	if !isExecutable(dst) {
		t.Fatalf("%s not built", dst)
	}
	out := logs.String()
	for _, want := range []string{"msg=building tool=gofmt elapsed=", "msg=compiling tool=gofmt packages=", "msg=built tool=gofmt"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, `"packages compiled"=`) {
		t.Errorf("progress lines lack the package count:\n%s", out)
	}
}

func TestBuildToolErrorsSayWhy(t *testing.T) {
	b := goBuild{logger: slog.New(slog.DiscardHandler), every: time.Hour, name: "missing"}
	gomod := "module example.com/buildtest\n\ngo 1.26\n"

	err := b.run(context.Background(), gomod, "example.com/buildtest/does/not/exist", filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "build of missing failed after") || !strings.Contains(err.Error(), "does/not/exist") {
		t.Fatalf("failed build: %v", err)
	}

	cause := errors.New("e2e-bins -timeout=1ms reached")
	ctx, cancel := context.WithTimeoutCause(context.Background(), time.Millisecond, cause)
	defer cancel()
	time.Sleep(5 * time.Millisecond)
	err = b.run(ctx, gomod, "cmd/gofmt", filepath.Join(t.TempDir(), "x"))
	if !errors.Is(err, cause) || !strings.Contains(err.Error(), "running it again resumes") {
		t.Fatalf("timed-out build must name the time limit and say it resumes: %v", err)
	}
}
