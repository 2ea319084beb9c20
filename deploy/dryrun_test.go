package deploy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"github.com/fanoutdev/fanout/e2e/harness"
)

// monitoringCRDs are stand-ins for the Prometheus Operator CRDs (schema-less), so the ServiceMonitor and PrometheusRule
// objects go through the same server-side create path as the rest.
var monitoringCRDs = []string{"servicemonitors:ServiceMonitor", "prometheusrules:PrometheusRule"}

func crd(plural, kind string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": plural + ".monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com",
			"scope": "Namespaced",
			"names": map[string]any{"plural": plural, "kind": kind},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			}},
		},
	}}
}

// TestManifestsServerDryRun creates every object of the committed plain manifests (and of the chart with remediation
// enabled) on a real kube-apiserver with server-side dry-run, then creates the RBAC for real and checks with
// SubjectAccessReviews that the service accounts get exactly the intended access.
func TestManifestsServerDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cp, err := harness.Start(ctx, harness.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	defer cp.Close()
	cfg := cp.RESTConfig(harness.AdminUser)
	dyn := dynamic.NewForConfigOrDie(cfg)
	cs := kubernetes.NewForConfigOrDie(cfg)

	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, c := range monitoringCRDs {
		plural, kind, _ := cut(c)
		if _, err := dyn.Resource(crdGVR).Create(ctx, crd(plural, kind), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD %s: %v", plural, err)
		}
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery()))
	waitFor(t, 30*time.Second, "monitoring CRDs served", func() bool {
		mapper.Reset()
		_, err := mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "PrometheusRule"}, "v1")
		return err == nil
	})

	committed, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeObjects(t, committed)
	// The namespace is created for real: namespaced dry-runs need it to exist.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	apply := func(objs []*unstructured.Unstructured, opts metav1.CreateOptions) int {
		n := 0
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				continue
			}
			gvk := o.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Errorf("%s %s: no REST mapping: %v", gvk, o.GetName(), err)
				continue
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
			}
			if _, err := ri.Create(ctx, o, opts); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("create %s %s/%s (dry-run %v): %v", gvk.Kind, o.GetNamespace(), o.GetName(), opts.DryRun, err)
				continue
			}
			n++
		}
		return n
	}
	dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}
	n := apply(objs, dry)
	withRemediation := decodeObjects(t, render(t, "aggregator.remediation.enabled=true", "aggregator.hostNetwork=true",
		"aggregator.addresses={10.0.0.10:9401,10.0.0.11:9401}", "profiling.url=http://127.0.0.1:4040", "auth.admin.enabled=true"))
	n += apply(withRemediation, dry)
	t.Logf("%d objects accepted by server-side dry-run", n)
	if t.Failed() {
		return
	}

	// Real create of the RBAC objects, then ask the authorizer what the service accounts may do.
	var rbac []*unstructured.Unstructured
	for _, o := range withRemediation {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbac = append(rbac, o)
		}
	}
	apply(rbac, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
	checkFlowSchema(ctx, t, cp, cs, withRemediation, apply)
	checkCertsKept(ctx, t, cp, cs)
	agent := "system:serviceaccount:" + namespace + ":fanout-agent"
	agg := "system:serviceaccount:" + namespace + ":fanout-aggregator"
	for _, c := range []struct {
		user                                   string
		verb, group, resource, ns, name, allow string
	}{
		{agent, "list", "", "pods", "", "", "yes"},
		{agent, "watch", "", "pods", "", "", "yes"},
		{agent, "patch", "", "pods", "team-a", "", "no"},
		{agent, "get", "", "secrets", "kube-system", "", "no"},
		{agent, "watch", "", "services", "default", "kubernetes", "yes"},
		{agent, "get", "", "services", "default", "other", "no"},
		{agent, "list", "discovery.k8s.io", "endpointslices", "default", "", "yes"},
		{agent, "list", "discovery.k8s.io", "endpointslices", "team-a", "", "no"},
		{agent, "patch", "apps", "daemonsets", "team-a", "", "no"},
		{agg, "patch", "apps", "daemonsets", "team-a", "", "yes"},
		{agg, "patch", "apps", "deployments", "team-a", "", "yes"},
		{agg, "get", "apps", "deployments", "team-a", "", "yes"},
		{agg, "patch", "apps", "statefulsets", "team-a", "", "yes"},
		{agg, "get", "apps", "statefulsets", "team-a", "", "yes"},
		// Headroom: list/watch of the workload kinds (full placement), never get or patch of ReplicaSets.
		{agg, "list", "apps", "statefulsets", "team-a", "", "yes"},
		{agg, "watch", "apps", "replicasets", "", "", "yes"},
		{agg, "watch", "autoscaling", "horizontalpodautoscalers", "", "", "yes"},
		{agg, "get", "apps", "replicasets", "team-a", "", "no"},
		{agg, "patch", "apps", "replicasets", "team-a", "", "no"},
		// In-cluster replica discovery: list (only) the EndpointSlices in default.
		{agg, "list", "discovery.k8s.io", "endpointslices", "default", "", "yes"},
		{agg, "watch", "discovery.k8s.io", "endpointslices", "default", "", "no"},
		{agg, "get", "discovery.k8s.io", "endpointslices", "default", "", "no"},
		{agg, "list", "discovery.k8s.io", "endpointslices", "team-a", "", "no"},
		{agent, "get", "discovery.k8s.io", "endpointslices", "default", "", "yes"},
		{agent, "list", "", "services", "default", "kubernetes", "yes"},
		{agg, "delete", "apps", "deployments", "team-a", "", "no"},
		{agg, "list", "", "pods", "", "", "no"},
		{agg, "get", "", "secrets", "team-a", "", "no"},
	} {
		sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
			User:   c.user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authv1.ResourceAttributes{
				Verb: c.verb, Group: c.group, Resource: c.resource, Namespace: c.ns, Name: c.name,
			},
		}}
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("subject access review: %v", err)
		}
		if got := map[bool]string{true: "yes", false: "no"}[res.Status.Allowed]; got != c.allow {
			t.Errorf("%s %s %s/%s in %q name %q: allowed=%s, want %s", c.user, c.verb, c.group, c.resource, c.ns, c.name, got, c.allow)
		}
	}
	// The aggregator reads the API server's /metrics (flow-control telemetry); the agent does not.
	for _, c := range []struct{ user, path, allow string }{{agg, "/metrics", "yes"}, {agent, "/metrics", "no"}, {agg, "/debug/pprof/", "no"}} {
		sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
			User: c.user, Groups: []string{"system:serviceaccounts", "system:authenticated"},
			NonResourceAttributes: &authv1.NonResourceAttributes{Verb: "get", Path: c.path},
		}}
		res, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("subject access review: %v", err)
		}
		if got := map[bool]string{true: "yes", false: "no"}[res.Status.Allowed]; got != c.allow {
			t.Errorf("%s get %s: allowed=%s, want %s", c.user, c.path, got, c.allow)
		}
	}
}

// checkFlowSchema creates the chart's FlowSchema and PriorityLevelConfiguration for real and checks, from the API
// Priority and Fairness response headers, that requests of the fanout-agent service account are classified into the
// fanout priority level while another service account's requests are not.
func checkFlowSchema(ctx context.Context, t *testing.T, cp *harness.ControlPlane, cs *kubernetes.Clientset, objs []*unstructured.Unstructured,
	apply func([]*unstructured.Unstructured, metav1.CreateOptions) int) {
	t.Helper()
	var fc []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "FlowSchema" || o.GetKind() == "PriorityLevelConfiguration" {
			fc = append(fc, o)
		}
	}
	if apply(fc, metav1.CreateOptions{}) != 2 {
		t.Fatal("flow control objects not created")
	}
	pl, err := cs.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, "fanout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "offender"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	plOf := func(ns, sa string) string {
		tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s/%s: %v", ns, sa, err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cp.URL+"/api/v1/namespaces/default/services/kubernetes", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Status.Token)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(cp.CAPEM)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("request as %s/%s: %v", ns, sa, err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")
	}
	waitFor(t, 30*time.Second, "fanout-agent classified into the fanout priority level", func() bool {
		return plOf(namespace, "fanout-agent") == string(pl.UID)
	})
	if plOf(namespace, "fanout-aggregator") != string(pl.UID) {
		t.Error("fanout-aggregator not classified into the fanout priority level")
	}
	if got := plOf("default", "offender"); got == "" || got == string(pl.UID) {
		t.Errorf("another service account classified into priority level %q (fanout's is %s)", got, pl.UID)
	}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkCertsKept checks the chart's `lookup`: rendered against the API server (helm template --dry-run=server), the
// chart issues a certificate for every Node the cluster lists, and once its CA and certificates are installed a second
// render keeps them (so `helm upgrade` does not lock the agents out) while issuing one for a Node that joined since.
func checkCertsKept(ctx context.Context, t *testing.T, cp *harness.ControlPlane, cs *kubernetes.Clientset) {
	t.Helper()
	addNode := func(name string) {
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", name, err)
		}
	}
	addNode("dryrun-node-1")
	kc, err := cp.WriteKubeconfig(harness.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	renderSecrets := func() map[string]*corev1.Secret {
		out := runHelm(t, "template", "fanout", chartDir, "--namespace", namespace, "--kube-version", kubeVersion,
			"--dry-run=server", "--kubeconfig", kc)
		m := map[string]*corev1.Secret{}
		for _, n := range []string{"fanout-ca", "fanout-tls-server", "fanout-tls-agents"} {
			s := convert[corev1.Secret](t, find(decodeObjects(t, out), "Secret", n))
			m[n] = s
		}
		return m
	}
	first := renderSecrets()
	if len(first["fanout-tls-agents"].Data["dryrun-node-1.crt"]) == 0 {
		t.Fatalf("no certificate for the cluster's Node dryrun-node-1: keys %v", slices.Sorted(maps.Keys(first["fanout-tls-agents"].Data)))
	}
	for _, s := range first {
		s.ResourceVersion = ""
		if _, err := cs.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create secret %s: %v", s.Name, err)
		}
	}
	addNode("dryrun-node-2")
	second := renderSecrets()
	for name, keys := range map[string][]string{"fanout-ca": {"ca.crt", "ca.key"}, "fanout-tls-server": {"server.crt", "server.key"},
		"fanout-tls-agents": {"ca.crt", "dryrun-node-1.crt", "dryrun-node-1.key"}} {
		for _, k := range keys {
			if !bytes.Equal(first[name].Data[k], second[name].Data[k]) {
				t.Errorf("upgrade render changed %s key %s", name, k)
			}
		}
	}
	if len(second["fanout-tls-agents"].Data["dryrun-node-2.crt"]) == 0 {
		t.Error("no certificate for the Node that joined before the upgrade")
	}
}
