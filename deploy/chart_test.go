package deploy

import (
	"bytes"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/fanoutdev/fanout/collector/enforce"
)

func TestHelmLint(t *testing.T) {
	out := runHelm(t, "lint", "--strict", chartDir)
	if !bytes.Contains(out, []byte("0 chart(s) failed")) {
		t.Fatalf("helm lint:\n%s", out)
	}
	// The static-address rule: without addresses or a fixed ClusterIP the chart must refuse to render.
	cmd := runHelmErr(t, "template", "fanout", chartDir, "--kube-version", kubeVersion, "--set", "aggregator.service.clusterIP=")
	if !strings.Contains(cmd, "static address") {
		t.Fatalf("rendering without aggregator addresses should fail naming static addresses, got: %s", cmd)
	}
}

func runHelmErr(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execHelm(t, args...)
	if err == nil {
		t.Fatalf("helm %v: want an error, got success", args)
	}
	return string(out)
}

func TestManifestsFresh(t *testing.T) {
	want := render(t, manifestSets...)
	got, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run make manifests and commit", manifestPath)
	}
	rulesSrc, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rulesCopy, err := os.ReadFile(chartDir + "/files/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rulesSrc, rulesCopy) {
		t.Fatal("helm/fanout/files/rules.yaml differs from prometheus/rules.yaml: run make manifests")
	}
	// The rendered PrometheusRule's spec is exactly the rule file.
	var src map[string]any
	if err := yaml.Unmarshal(rulesSrc, &src); err != nil {
		t.Fatal(err)
	}
	pr := find(decodeObjects(t, got), "PrometheusRule", "fanout")
	if pr == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	if !reflect.DeepEqual(pr.Object["spec"], src) {
		t.Fatal("rendered PrometheusRule spec differs from prometheus/rules.yaml")
	}
}

func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	if u == nil {
		t.Fatalf("object of type %T not rendered", new(T))
	}
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &v, true); err != nil {
		t.Fatalf("%s/%s: %v", u.GetKind(), u.GetName(), err)
	}
	return &v
}

// TestAgentLeastPrivilege checks the agent runs unprivileged with exactly the four capabilities, on every node, with
// the host mounts it needs, and that RBAC grants only what the issue allows.
func TestAgentLeastPrivilege(t *testing.T) {
	objs := decodeObjects(t, render(t, "aggregator.remediation.enabled=true"))
	ds := convert[appsv1.DaemonSet](t, find(objs, "DaemonSet", "fanout-agent"))
	spec := ds.Spec.Template.Spec
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	if spec.HostPID || spec.HostIPC {
		t.Error("agent must not share host PID/IPC namespaces")
	}
	if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Operator == corev1.TolerationOpExists && tl.Key == "" && tl.Effect == ""
	}) {
		t.Errorf("agent must tolerate every taint, got %+v", spec.Tolerations)
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Fatalf("agent security context must be unprivileged: %+v", sc)
	}
	var added []string
	for _, c := range sc.Capabilities.Add {
		added = append(added, string(c))
	}
	slices.Sort(added)
	if want := []string{"BPF", "NET_ADMIN", "PERFMON", "SYS_RESOURCE"}; !slices.Equal(added, want) {
		t.Errorf("capabilities %v, want %v", added, want)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities must drop ALL, got %v", sc.Capabilities.Drop)
	}
	mounts := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			mounts[v.Name] = v.HostPath.Path
		}
	}
	for name, path := range map[string]string{"cgroup": "/sys/fs/cgroup", "bpffs": "/sys/fs/bpf", "pod-logs": "/var/log/pods"} {
		if mounts[name] != path {
			t.Errorf("host mount %s = %q, want %q", name, mounts[name], path)
		}
	}
	for _, m := range c.VolumeMounts {
		if m.MountPropagation != nil && *m.MountPropagation == corev1.MountPropagationBidirectional {
			t.Errorf("mount %s: Bidirectional propagation needs a privileged container", m.Name)
		}
	}
	if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--aggregator.address=10.96.0.100:") }) {
		t.Errorf("agent must dial aggregators by static address, args %v", c.Args)
	}
	for _, o := range objs {
		if bytes.Contains(mustJSON(t, o), []byte(`"privileged":true`)) {
			t.Errorf("%s/%s is privileged", o.GetKind(), o.GetName())
		}
	}

	agentRole := convert[rbacv1.ClusterRole](t, find(objs, "ClusterRole", "fanout-agent"))
	if len(agentRole.Rules) != 1 || !slices.Equal(agentRole.Rules[0].Resources, []string{"pods"}) ||
		!slices.Equal(agentRole.Rules[0].Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("agent cluster role must be read-only on pods: %+v", agentRole.Rules)
	}
	disc := convert[rbacv1.Role](t, find(objs, "Role", "fanout-agent-apiserver-discovery"))
	if disc.Namespace != "default" {
		t.Errorf("discovery role in namespace %q, want default", disc.Namespace)
	}
	aggRole := convert[rbacv1.ClusterRole](t, find(objs, "ClusterRole", "fanout-aggregator-remediation"))
	for _, r := range aggRole.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "patch" {
				t.Errorf("aggregator role grants %q", v)
			}
		}
	}
	if len(aggRole.Rules) != 1 || !slices.Equal(aggRole.Rules[0].Resources, []string{"daemonsets", "deployments", "statefulsets"}) {
		t.Errorf("aggregator remediation role must cover exactly apps daemonsets, deployments, statefulsets: %+v", aggRole.Rules)
	}
	// Without remediation, the aggregator holds no API permissions at all.
	if find(decodeObjects(t, render(t)), "ClusterRole", "fanout-aggregator-remediation") != nil {
		t.Error("remediation role rendered although remediation is disabled")
	}
}

func mustJSON(t *testing.T, o *unstructured.Unstructured) []byte {
	t.Helper()
	b, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuthSecrets checks the mTLS material (one certificate per node, no wildcard node, nothing rendered for a side
// whose Secret the user brings, and the pods mount those) and the optional admin token.
func TestAuthSecrets(t *testing.T) {
	secretData := func(objs []*unstructured.Unstructured, name string) map[string]string {
		t.Helper()
		s := convert[corev1.Secret](t, find(objs, "Secret", name))
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out
	}
	gen := decodeObjects(t, render(t, "tls.nodes={node-a,node-b}"))
	agents := secretData(gen, "fanout-tls-agents")
	keys := slices.Sorted(maps.Keys(agents))
	if want := []string{"ca.crt", "node-a.crt", "node-a.key", "node-b.crt", "node-b.key"}; !slices.Equal(keys, want) {
		t.Errorf("agent TLS secret keys %v, want %v", keys, want)
	}
	if srv := secretData(gen, "fanout-tls-server"); srv["ca.crt"] != agents["ca.crt"] || srv["server.crt"] == "" || srv["server.key"] == "" {
		t.Errorf("server TLS secret: %v keys, CA shared %v", len(srv), srv["ca.crt"] == agents["ca.crt"])
	}
	if find(gen, "Secret", "fanout-auth") != nil {
		t.Error("a shared agent token Secret is rendered")
	}
	for _, bad := range []string{"tls.nodes={*}", "tls.nodes={node-*}"} {
		if out := runHelmErr(t, "template", "fanout", chartDir, "--kube-version", kubeVersion, "--set", bad); !strings.Contains(out, "wildcards") {
			t.Errorf("%s should be refused, got: %s", bad, out)
		}
	}

	objs := decodeObjects(t, render(t, "tls.existingServerSecret=my-server", "tls.existingAgentSecret=my-agents", "auth.admin.enabled=true"))
	for _, n := range []string{"fanout-ca", "fanout-tls-server", "fanout-tls-agents", "my-server", "my-agents"} {
		if find(objs, "Secret", n) != nil {
			t.Errorf("Secret %s rendered although both TLS Secrets are brought", n)
		}
	}
	admin := secretData(objs, "fanout-admin")
	if len(admin["token"]) < 16 {
		t.Errorf("admin token %q", admin["token"])
	}
	secretOf := func(spec corev1.PodSpec, volume string) string {
		for _, v := range spec.Volumes {
			if v.Name == volume && v.Secret != nil {
				return v.Secret.SecretName
			}
		}
		return ""
	}
	ds := convert[appsv1.DaemonSet](t, find(objs, "DaemonSet", "fanout-agent"))
	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", "fanout-aggregator"))
	if got := secretOf(ds.Spec.Template.Spec, "tls"); got != "my-agents" {
		t.Errorf("agent mounts secret %q, want my-agents", got)
	}
	if got := secretOf(dep.Spec.Template.Spec, "tls"); got != "my-server" {
		t.Errorf("aggregator mounts secret %q, want my-server", got)
	}
	if got := secretOf(dep.Spec.Template.Spec, "admin"); got != "fanout-admin" {
		t.Errorf("aggregator mounts admin secret %q, want fanout-admin", got)
	}
	if !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, "--auth.admin-token-file=/etc/fanout/admin/token") {
		t.Errorf("aggregator args lack the admin token file: %v", dep.Spec.Template.Spec.Containers[0].Args)
	}
}

// TestProtectedWorkloads checks both binaries get the same protected list: the agent's built-in defaults (the flag
// replaces them, so the chart must carry them) plus fanout's own DaemonSet and Deployment.
func TestProtectedWorkloads(t *testing.T) {
	objs := decodeObjects(t, render(t, "aggregator.remediation.enabled=true"))
	ds := convert[appsv1.DaemonSet](t, find(objs, "DaemonSet", "fanout-agent"))
	dep := convert[appsv1.Deployment](t, find(objs, "Deployment", "fanout-aggregator"))
	flagList := func(args []string, flag string) []string {
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, flag+"="); ok {
				return strings.Split(v, ",")
			}
		}
		t.Fatalf("no %s in %v", flag, args)
		return nil
	}
	agent := flagList(ds.Spec.Template.Spec.Containers[0].Args, "--enforce.protected")
	agg := flagList(dep.Spec.Template.Spec.Containers[0].Args, "--killswitch.protected")
	if !slices.Equal(agent, agg) {
		t.Errorf("agent and aggregator protect different workloads:\n%v\n%v", agent, agg)
	}
	for _, p := range enforce.DefaultProtected {
		if !slices.Contains(agent, p) {
			t.Errorf("chart's protected list lacks the agent default %q (values.yaml protected)", p)
		}
	}
	for _, own := range []string{"DaemonSet/" + namespace + "/fanout-agent", "Deployment/" + namespace + "/fanout-aggregator"} {
		if !slices.Contains(agg, own) {
			t.Errorf("%s not protected: %v", own, agg)
		}
	}
}
