package harness

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// modules holds the go.mod templates of the throw-away modules that build the control plane.
//
//go:embed modules/etcd/go.mod.tmpl modules/kube-apiserver/go.mod.tmpl
var modules embed.FS

// Versions of the control plane the harness builds. The staging modules of k8s.io/kubernetes are published as
// v0.<minor>.<patch>.
const (
	KubernetesVersion = "v1.37.2"
	stagingVersion    = "v0.37.2"
	EtcdVersion       = "v3.6.16"
)

// Binaries are the paths of a built control plane.
type Binaries struct {
	Dir           string
	Etcd          string
	KubeAPIServer string
}

// BinDir is where built binaries are cached: $FANOUT_K8S_BIN_DIR, else ~/.cache/fanout/k8s-<version> (etcd's
// version is fixed per Kubernetes version here, so one key covers both).
func BinDir() (string, error) {
	if d := os.Getenv("FANOUT_K8S_BIN_DIR"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locate cache dir: %w", err)
	}
	return filepath.Join(cache, "fanout", "k8s-"+KubernetesVersion), nil
}

// EnsureBinaries returns the cached etcd and kube-apiserver, building whichever is missing. Concurrent callers (test
// binaries of several packages) serialize on a lock file; the second finds the binaries built.
func EnsureBinaries(ctx context.Context, logger *slog.Logger) (Binaries, error) {
	dir, err := BinDir()
	if err != nil {
		return Binaries{}, err
	}
	b := Binaries{Dir: dir, Etcd: filepath.Join(dir, "etcd"), KubeAPIServer: filepath.Join(dir, "kube-apiserver")}
	if isExecutable(b.Etcd) && isExecutable(b.KubeAPIServer) {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create bin dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Binaries{}, fmt.Errorf("open build lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(ctx, lock, logger); err != nil {
		return Binaries{}, err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway
	if isExecutable(b.Etcd) && isExecutable(b.KubeAPIServer) {
		return b, nil // another process built them while we waited
	}

	if !isExecutable(b.Etcd) {
		logger.Info("building etcd from the module proxy (about a minute; cached afterwards)", "version", EtcdVersion, "into", dir)
		gomod, err := renderModule("modules/etcd/go.mod.tmpl", moduleVars{EtcdVersion: EtcdVersion})
		if err != nil {
			return Binaries{}, err
		}
		if err := buildToolLogged(ctx, logger, gomod, "go.etcd.io/etcd/server/v3", b.Etcd); err != nil {
			return Binaries{}, fmt.Errorf("build etcd: %w", err)
		}
	}
	if !isExecutable(b.KubeAPIServer) {
		logger.Info("building kube-apiserver from the module proxy: the first build takes 10-25 min on 2 cores (progress every 30 s); "+
			"interrupting is safe, the Go build cache keeps every finished package and the next run resumes",
			"version", KubernetesVersion, "into", dir)
		gomod, err := kubeAPIServerModule(ctx)
		if err != nil {
			return Binaries{}, err
		}
		if err := buildToolLogged(ctx, logger, gomod, "k8s.io/kubernetes/cmd/kube-apiserver", b.KubeAPIServer); err != nil {
			return Binaries{}, fmt.Errorf("build kube-apiserver: %w", err)
		}
	}
	return b, nil
}

// stagingReplace matches the staging replace lines of k8s.io/kubernetes's go.mod ("k8s.io/api => ./staging/...").
var stagingReplace = regexp.MustCompile(`(?m)^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/`)

// kubeAPIServerModule writes the go.mod of a module that builds kube-apiserver: k8s.io/kubernetes points its staging
// modules at local directories, so every one of them gets a replace line to its published version.
func kubeAPIServerModule(ctx context.Context) (string, error) {
	tmp, err := os.MkdirTemp("", "fanout-kmod-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	out, err := goCmd(ctx, tmp, "mod", "download", "-json", "k8s.io/kubernetes@"+KubernetesVersion)
	if err != nil {
		return "", fmt.Errorf("download k8s.io/kubernetes: %w", err)
	}
	var info struct{ GoMod, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("decode go mod download output: %w", err)
	}
	if info.Error != "" {
		return "", fmt.Errorf("download k8s.io/kubernetes: %s", info.Error)
	}
	upstream, err := os.ReadFile(info.GoMod)
	if err != nil {
		return "", fmt.Errorf("read k8s.io/kubernetes go.mod: %w", err)
	}
	staging := StagingModules(upstream)
	if len(staging) == 0 {
		return "", errors.New("k8s.io/kubernetes go.mod lists no staging modules: the build recipe no longer applies")
	}
	return renderModule("modules/kube-apiserver/go.mod.tmpl", moduleVars{
		KubernetesVersion: KubernetesVersion, StagingVersion: stagingVersion, Staging: staging,
	})
}

// StagingModules lists the modules that a k8s.io/kubernetes go.mod replaces with ./staging directories, in file order.
func StagingModules(upstreamGoMod []byte) []string {
	var mods []string
	seen := map[string]bool{}
	for _, m := range stagingReplace.FindAllSubmatch(upstreamGoMod, -1) {
		if mod := string(m[1]); !seen[mod] {
			seen[mod] = true
			mods = append(mods, mod)
		}
	}
	return mods
}

// moduleVars fills the go.mod templates under modules/.
type moduleVars struct {
	EtcdVersion       string
	KubernetesVersion string
	StagingVersion    string
	Staging           []string
}

func renderModule(name string, vars moduleVars) (string, error) {
	t, err := template.ParseFS(modules, name)
	if err != nil {
		return "", fmt.Errorf("parse module template %s: %w", name, err)
	}
	var sb strings.Builder
	if err := t.Execute(&sb, vars); err != nil {
		return "", fmt.Errorf("render module template %s: %w", name, err)
	}
	return sb.String(), nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// lockFile takes an exclusive flock on f, waiting (bounded by ctx) while another process holds it, and says every
// ProgressEvery that it is still waiting.
func lockFile(ctx context.Context, f *os.File, logger *slog.Logger) error {
	start := time.Now()
	var lastLog time.Time
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("take build lock: %w", err)
		}
		if time.Since(lastLog) >= ProgressEvery {
			logger.Info("another process is building the control plane binaries; waiting for it", "lock", f.Name(),
				"waited", time.Since(start).Round(time.Second))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for build lock %s held by another build, after %s: %w", f.Name(), time.Since(start).Round(time.Second), context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}
