package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const (
	chartDir     = "helm/fanout"
	manifestPath = "manifests/fanout.yaml"
	namespace    = "fanout-system"
	kubeVersion  = "v1.37.2"
)

// manifestSets are the --set values `make manifests` renders deploy/manifests/fanout.yaml with: the Namespace, and the
// mTLS material in Secrets the user creates (so the committed manifests carry no key).
var manifestSets = []string{"namespace.create=true", "tls.existingServerSecret=fanout-tls-server", "tls.existingAgentSecret=fanout-tls-agents"}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helmVersion reads the helm version pinned in tools/helm/go.mod.
func helmVersion() (string, error) {
	raw, err := os.ReadFile("../tools/helm/go.mod")
	if err != nil {
		return "", fmt.Errorf("read tools/helm/go.mod: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "helm.sh/helm/v3" {
			return f[1], nil
		}
	}
	return "", errors.New("helm.sh/helm/v3 not required in tools/helm/go.mod")
}

// helm returns the helm CLI built from the tools/helm module (its own go.mod), cached by version like `make helm`.
func helm(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() {
		var v, cache string
		if v, helmErr = helmVersion(); helmErr != nil {
			return
		}
		if cache, helmErr = os.UserCacheDir(); helmErr != nil {
			return
		}
		helmPath = filepath.Join(cache, "fanout", "tools", "helm-"+v)
		if st, err := os.Stat(helmPath); err == nil && st.Mode()&0o111 != 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		tmp := helmPath + fmt.Sprintf(".tmp%d", os.Getpid())
		out, err := exec.CommandContext(ctx, "go", "-C", "../tools/helm", "build", "-o", tmp, "helm.sh/helm/v3/cmd/helm").CombinedOutput()
		if err != nil {
			helmErr = fmt.Errorf("build helm %s: %w\n%s", v, err, out)
			return
		}
		helmErr = os.Rename(tmp, helmPath)
	})
	if helmErr != nil {
		t.Fatal(helmErr)
	}
	return helmPath
}

func execHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(helm(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

func runHelm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := execHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// render runs helm template like `make manifests`, with extra --set values.
func render(t *testing.T, sets ...string) []byte {
	t.Helper()
	args := []string{"template", "fanout", chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return runHelm(t, args...)
}

// decodeObjects splits a multi-document YAML stream into objects.
func decodeObjects(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}
