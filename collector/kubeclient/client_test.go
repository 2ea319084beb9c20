package kubeclient

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

var (
	_ Client = kubernetes.Interface(nil)
	_ Client = fake.NewClientset()
)

func TestNewFromKubeconfig(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(kc, "fanout-agent/test")
	if err != nil {
		t.Fatal(err)
	}
	if c.CoreV1() == nil || c.DiscoveryV1() == nil {
		t.Fatal("nil typed client")
	}
	if _, err := New(filepath.Join(t.TempDir(), "missing"), "x"); err == nil {
		t.Fatal("a missing kubeconfig gave no error")
	}
}
