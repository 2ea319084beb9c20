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
	// Without remediation, the aggregator holds no remediation permissions (its read-only grants: TestAggregatorHeadroom).
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

// TestAggregatorHeadroom checks how the chart wires the headroom source, the placement watch and the persisted state,
// and that the aggregator's read-only grants follow the values: /metrics only when it scrapes the API server, the
// workload kinds only with the placement watch, EndpointSlices (list, in default) only for in-cluster discovery.
func TestAggregatorHeadroom(t *testing.T) {
	type want struct {
		source    string // the --headroom.* source flag
		watch     bool
		metrics   bool // get /metrics granted
		discovery bool // the EndpointSlice Role rendered
	}
	for _, c := range []struct {
		name string
		sets []string
		want want
	}{
		{"default", nil, want{"--headroom.apiserver-url=in-cluster", true, true, true}},
		{"explicit", []string{"aggregator.headroom.apiserverURLs={https://10.0.0.1:6443,https://10.0.0.2:6443}"},
			want{"--headroom.apiserver-url=https://10.0.0.1:6443,https://10.0.0.2:6443", true, true, false}},
		{"prometheus", []string{"aggregator.headroom.prometheusURL=http://prom:9090"},
			want{"--headroom.prometheus-url=http://prom:9090", true, false, false}},
		{"prometheus-no-watch", []string{"aggregator.headroom.prometheusURL=http://prom:9090", "aggregator.placement.watch=false"},
			want{"--headroom.prometheus-url=http://prom:9090", false, false, false}},
	} {
		t.Run(c.name, func(t *testing.T) {
			objs := decodeObjects(t, render(t, c.sets...))
			dep := convert[appsv1.Deployment](t, find(objs, "Deployment", "fanout-aggregator"))
			spec := dep.Spec.Template.Spec
			ctr := spec.Containers[0]
			var sources []string
			for _, a := range ctr.Args {
				if strings.HasPrefix(a, "--headroom.apiserver-url") || strings.HasPrefix(a, "--headroom.prometheus-url") {
					sources = append(sources, a)
				}
			}
			if !slices.Equal(sources, []string{c.want.source}) {
				t.Errorf("headroom source %v, want %s", sources, c.want.source)
			}
			for _, a := range []string{"--headroom.interval=5s", "--state.file=/var/lib/fanout/trips.json", "--headroom.state-file=/var/lib/fanout/headroom.json"} {
				if !slices.Contains(ctr.Args, a) {
					t.Errorf("no %s in %v", a, ctr.Args)
				}
			}
			if got := slices.Contains(ctr.Args, "--placement.watch"); got != c.want.watch {
				t.Errorf("--placement.watch passed: %v, want %v", got, c.want.watch)
			}
			// The state files live on a writable emptyDir; the root filesystem stays read-only.
			if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("aggregator root filesystem not read-only")
			}
			i := slices.IndexFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/var/lib/fanout" })
			if i < 0 || ctr.VolumeMounts[i].ReadOnly {
				t.Fatalf("no writable mount at /var/lib/fanout: %+v", ctr.VolumeMounts)
			}
			j := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == ctr.VolumeMounts[i].Name })
			if j < 0 || spec.Volumes[j].EmptyDir == nil {
				t.Errorf("/var/lib/fanout is not an emptyDir: %+v", spec.Volumes)
			}
			// The token is mounted exactly when the aggregator calls the API server.
			if am := spec.AutomountServiceAccountToken; am == nil || *am != (c.want.watch || c.want.metrics) {
				t.Errorf("automountServiceAccountToken %v, want %v", am, c.want.watch || c.want.metrics)
			}
			var rules []rbacv1.PolicyRule
			if o := find(objs, "ClusterRole", "fanout-aggregator-headroom"); o != nil {
				rules = convert[rbacv1.ClusterRole](t, o).Rules
			}
			hasMetrics := slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
				return slices.Equal(r.NonResourceURLs, []string{"/metrics"}) && slices.Equal(r.Verbs, []string{"get"})
			})
			hasKinds := slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "replicasets") })
			if hasMetrics != c.want.metrics || hasKinds != c.want.watch {
				t.Errorf("headroom role: /metrics %v (want %v), workload kinds %v (want %v): %+v", hasMetrics, c.want.metrics, hasKinds, c.want.watch, rules)
			}
			for _, r := range rules {
				if slices.ContainsFunc(r.Verbs, func(v string) bool { return v != "get" && v != "list" && v != "watch" }) ||
					slices.Contains(r.NonResourceURLs, "/metrics") && !slices.Equal(r.Verbs, []string{"get"}) {
					t.Errorf("headroom role grants more than reads: %+v", r)
				}
			}
			role := find(objs, "Role", "fanout-aggregator-apiserver-discovery")
			if (role != nil) != c.want.discovery {
				t.Fatalf("EndpointSlice discovery role rendered: %v, want %v", role != nil, c.want.discovery)
			}
			if role != nil {
				r := convert[rbacv1.Role](t, role)
				if r.Namespace != "default" || len(r.Rules) != 1 || !slices.Equal(r.Rules[0].APIGroups, []string{"discovery.k8s.io"}) ||
					!slices.Equal(r.Rules[0].Resources, []string{"endpointslices"}) || !slices.Equal(r.Rules[0].Verbs, []string{"list"}) {
					t.Errorf("discovery role must list endpointslices in default only: %s %+v", r.Namespace, r.Rules)
				}
				if find(objs, "RoleBinding", "fanout-aggregator-apiserver-discovery") == nil {
					t.Error("discovery role not bound")
				}
			}
		})
	}
	out := runHelmErr(t, "template", "fanout", chartDir, "--kube-version", kubeVersion,
		"--set", "aggregator.headroom.prometheusURL=http://prom:9090", "--set", "aggregator.headroom.apiserverURLs={https://10.0.0.1:6443}")
	if !strings.Contains(out, "not both") {
		t.Errorf("apiserverURLs with prometheusURL should be refused, got: %s", out)
	}
}
