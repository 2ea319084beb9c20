package harness

import (
	"strings"
	"testing"
)

func TestKubectlModuleAddsTool(t *testing.T) {
	kas, err := renderModule("modules/kube-apiserver/go.mod.tmpl", moduleVars{
		KubernetesVersion: KubernetesVersion, StagingVersion: stagingVersion,
		Staging: StagingModules([]byte(upstreamFixture)),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := withTool(kas, kubectlPkg)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"\ntool k8s.io/kubernetes/cmd/kubectl\n", "\ntool k8s.io/kubernetes/cmd/kube-apiserver\n",
		"require k8s.io/kubernetes " + KubernetesVersion, "\tk8s.io/api => k8s.io/api " + stagingVersion + "\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("kubectl build module lacks %q:\n%s", line, got)
		}
	}
	if _, err := withTool("module x\n\ngo 1.26.0\n", kubectlPkg); err == nil {
		t.Error("a module without a tool directive must be refused")
	}
	t.Setenv("FANOUT_K8S_BIN_DIR", "/cache/k8s")
	if p, err := KubectlPath(); err != nil || p != "/cache/k8s/kubectl" {
		t.Fatalf("kubectl path %q, %v: want it next to the control plane binaries", p, err)
	}
}
