package harness

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const upstreamFixture = `module k8s.io/kubernetes

go 1.26.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/cri-api => ./staging/src/k8s.io/cri-api
	k8s.io/api => ./staging/src/k8s.io/api
	github.com/example/other => github.com/example/other v1.0.0
)
`

func TestStagingModules(t *testing.T) {
	got := StagingModules([]byte(upstreamFixture))
	want := []string{"k8s.io/api", "k8s.io/client-go", "k8s.io/cri-api"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("StagingModules = %v, want %v", got, want)
	}
}

func TestRenderModules(t *testing.T) {
	kas, err := renderModule("modules/kube-apiserver/go.mod.tmpl", moduleVars{
		KubernetesVersion: KubernetesVersion, StagingVersion: stagingVersion,
		Staging: StagingModules([]byte(upstreamFixture)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"require k8s.io/kubernetes " + KubernetesVersion,
		"tool k8s.io/kubernetes/cmd/kube-apiserver",
		"\tk8s.io/api => k8s.io/api " + stagingVersion + "\n",
		"\tk8s.io/cri-api => k8s.io/cri-api " + stagingVersion + "\n",
	} {
		if !strings.Contains(kas, line) {
			t.Errorf("kube-apiserver go.mod lacks %q:\n%s", line, kas)
		}
	}
	if strings.Contains(kas, "example/other") {
		t.Errorf("non-staging replace copied:\n%s", kas)
	}
	etcd, err := renderModule("modules/etcd/go.mod.tmpl", moduleVars{EtcdVersion: EtcdVersion})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"require go.etcd.io/etcd/server/v3 " + EtcdVersion, "tool go.etcd.io/etcd/server/v3"} {
		if !strings.Contains(etcd, line) {
			t.Errorf("etcd go.mod lacks %q:\n%s", line, etcd)
		}
	}
}

func TestBuildLockWaitsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lock")
	holder, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	waiter, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := lockFile(ctx, waiter, slog.New(slog.DiscardHandler)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock held elsewhere: got %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("waited %s past a 700ms deadline", d)
	}
	go func() { time.Sleep(300 * time.Millisecond); _ = syscall.Flock(int(holder.Fd()), syscall.LOCK_UN) }()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := lockFile(ctx2, waiter, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("lock released by the holder: %v", err)
	}
}
