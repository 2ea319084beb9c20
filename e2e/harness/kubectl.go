package harness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// kubectlPkg is the real, unmodified kubectl, from the same k8s.io/kubernetes version as the API server.
const kubectlPkg = "k8s.io/kubernetes/cmd/kubectl"

// KubectlPath is where EnsureKubectl caches kubectl: next to the control plane, so the version key is the same.
func KubectlPath() (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kubectl"), nil
}

// EnsureKubectl returns the cached kubectl of KubernetesVersion, building it from the Go module proxy when missing
// (~4 min once kube-apiserver's build cache is warm). It uses the kube-apiserver build module (same requirements and
// staging replaces) with kubectl added as a tool, and the same lock file as EnsureBinaries, so the two builds never
// compete for the CPU.
func EnsureKubectl(ctx context.Context, logger *slog.Logger) (string, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dst, err := KubectlPath()
	if err != nil {
		return "", err
	}
	if isExecutable(dst) {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create bin dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(dst), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open build lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(ctx, lock, logger); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway
	if isExecutable(dst) {
		return dst, nil // built by another process while we waited
	}
	logger.Info("building kubectl from the module proxy (~4 min with a warm build cache, cached afterwards)", "version", KubernetesVersion, "into", dst)
	gomod, err := kubeAPIServerModule(ctx)
	if err != nil {
		return "", err
	}
	gomod, err = withTool(gomod, kubectlPkg)
	if err != nil {
		return "", err
	}
	if err := buildTool(ctx, gomod, kubectlPkg, dst); err != nil {
		return "", fmt.Errorf("build kubectl: %w", err)
	}
	return dst, nil
}

// withTool adds a tool directive to a rendered go.mod that already has one (a module may list several tools).
func withTool(gomod, pkg string) (string, error) {
	const anchor = "\ntool "
	i := strings.Index(gomod, anchor)
	if i < 0 {
		return "", fmt.Errorf("build module has no tool directive to add %s next to", pkg)
	}
	return gomod[:i] + anchor + pkg + gomod[i:], nil
}
