package placement_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/aggregator/apiserverstats"
	"github.com/fanoutdev/fanout/aggregator/placement"
	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
)

const aggUser = "fanout-aggregator"

// TestRealAPIServer runs the aggregator's two API-server readers against a real kube-apiserver with the chart's
// least privilege: the placement watcher (one watch per kind) and the /metrics scraper; it measures their API cost
// from the audit log, then stops the API server and checks both degrade as designed (placement keeps its values,
// the scraper backs off and emits nothing).
func TestRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cp, err := harness.Start(ctx, harness.Config{Users: []string{aggUser}, AuditUsers: []string{aggUser}, Logger: logger})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	defer cp.Close()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	// The chart's rules (deploy/helm/fanout templates): get /metrics, list/watch the workload kinds.
	if err := fleet.GrantRules(ctx, admin, "fanout-aggregator", []rbacv1.PolicyRule{
		{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments", "replicasets", "statefulsets"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: []string{"list", "watch"}},
	}, aggUser); err != nil {
		t.Fatal(err)
	}
	const ns = "apps"
	if err := fleet.EnsureNamespace(ctx, admin, ns); err != nil {
		t.Fatal(err)
	}
	mk := mkObjects(t, ctx, admin, ns)

	w := placement.New(kubernetes.NewForConfigOrDie(cp.RESTConfig(aggUser)), placement.DefaultConfig(), logger)
	wctx, wstop := context.WithCancel(ctx)
	defer wstop()
	go func() { _ = w.Run(wctx) }()
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint32{
		"DaemonSet/apps/telemetry": 7, "Deployment/apps/web": 12 /* its HPA's maxReplicas */, "StatefulSet/apps/db": 4,
		"ReplicaSet/apps/bare": 2,
	}
	check := func(want map[string]uint32) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			bad := ""
			for wl, n := range want {
				if got, ok := w.FullPlacement(wl); !ok || got != n {
					bad += fmt.Sprintf(" %s=%d(%v) want %d", wl, got, ok, n)
				}
			}
			if bad == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("placement:%s", bad)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	check(want)
	if _, ok := w.FullPlacement("ReplicaSet/apps/web-6d4f9"); ok {
		t.Fatal("a Deployment's ReplicaSet is its revision, not a workload")
	}

	// The scraper, with a token file and the CA, at its default interval.
	dir := t.TempDir()
	tokenFile, caFile := filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt")
	_ = os.WriteFile(tokenFile, []byte(cp.Token(aggUser)+"\n"), 0o600)
	_ = os.WriteFile(caFile, cp.CAPEM, 0o600)
	sc, err := apiserverstats.NewScraper(apiserverstats.ScrapeConfig{URLs: []string{cp.URL}, TokenFile: tokenFile, CAFile: caFile}, logger)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var readings []apiserverstats.Reading
	sctx, sstop := context.WithCancel(ctx)
	defer sstop()
	var swg sync.WaitGroup
	swg.Add(1)
	go func() {
		defer swg.Done()
		sc.Run(sctx, func(r apiserverstats.Reading) { mu.Lock(); readings = append(readings, r); mu.Unlock() })
	}()

	// Changes arrive over the watch: scale, HPA removed, DaemonSet's nodes change.
	costStart := time.Now()
	before, _ := cp.AuditCounts()
	mk.scale(ctx, 5)
	if err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mk.dsDesired(ctx, 9)
	want["Deployment/apps/web"], want["DaemonSet/apps/telemetry"] = 5, 9
	check(want)

	window := 60 * time.Second
	time.Sleep(window - time.Since(costStart))
	after, err := cp.AuditCounts()
	if err != nil {
		t.Fatal(err)
	}
	n0 := 0
	if c := before[aggUser]; c != nil {
		n0 = c.Total
	}
	a := after[aggUser]
	t.Logf("aggregator API cost over %s (steady state, after sync): %d requests %v; sync (lists+watches) before it: %d",
		time.Since(costStart).Round(time.Second), a.Total-n0, a.ByVerb, n0)
	// client-go's informers stream their initial list over the watch (WatchListClient): one watch per kind, and a
	// plain list only where the server refuses that.
	if w, l := a.ByVerb["watch"], a.ByVerb["list"]; w != 5 || l > 5 {
		t.Fatalf("want one watch (and at most one list) per kind, 5 kinds: %v", a.ByVerb)
	}
	if g := a.ByVerb["get"]; g < 8 || g > 14 { // the interval runs from the end of a scrape; the first is jittered
		t.Fatalf("want about 12 scrapes a minute at the default 5 s interval, got %d gets", g)
	}
	mu.Lock()
	got := append([]apiserverstats.Reading(nil), readings...)
	mu.Unlock()
	if len(got) < 8 || len(got) > 16 {
		t.Fatalf("%d readings in %s at a 5 s interval", len(got), window)
	}
	last := got[len(got)-1]
	if !last.Deltas || last.NominalSeats <= 0 || last.Replica != fmt.Sprintf("127.0.0.1:%d", cp.Port) {
		t.Fatalf("reading: %+v", last)
	}
	// A quiet API server may complete no request within one 5 s interval (its own lease renewals come every 10 s):
	// request latency must show up in the readings, not necessarily in the last one.
	observed := 0.0
	for _, r := range got {
		observed += r.Latency.Count
	}
	if observed <= 0 {
		t.Fatalf("no request latency in %d readings", len(got))
	}
	if err := func() error { s := last.Sample(); return s.Validate() }(); err != nil {
		t.Fatal(err)
	}
	st := sc.Status()[0]
	t.Logf("scrapes %d ok, last took %s, %d bytes; seats %.0f/%.0f", st.Scrapes, st.Duration.Round(time.Millisecond), st.BodyBytes, last.ExecutingSeats, last.NominalSeats)

	// The API server goes away: placement keeps its last values; the scraper fails, backs off, emits nothing.
	down := time.Now()
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	n := len(readings)
	mu.Unlock()
	time.Sleep(40 * time.Second)
	check(want)
	st = sc.Status()[0]
	mu.Lock()
	n2 := len(readings)
	mu.Unlock()
	t.Logf("API server down for %s: %d scrape attempts failed (consecutive), last error %q; readings emitted %d",
		time.Since(down).Round(time.Second), st.ConsecutiveFailures, st.LastError, n2-n)
	if st.Success || n2 != n {
		t.Fatalf("scrape succeeded or emitted while the API server is down: %+v, %d readings", st, n2-n)
	}
	// Backoff: 5, 10, 20 s (+-10%) after the first failure: at most 4 attempts in 40 s, never one per interval.
	if st.ConsecutiveFailures < 2 || st.ConsecutiveFailures > 4 {
		t.Fatalf("%d attempts in 40 s: backoff broken", st.ConsecutiveFailures)
	}
	sstop()
	swg.Wait()
}

type objects struct {
	t      *testing.T
	admin  kubernetes.Interface
	ns     string
	ds     *appsv1.DaemonSet
	deploy *appsv1.Deployment
}

func mkObjects(t *testing.T, ctx context.Context, admin kubernetes.Interface, ns string) *objects {
	t.Helper()
	o := &objects{t: t, admin: admin, ns: ns}
	tmpl := func(app string) (*metav1.LabelSelector, corev1.PodTemplateSpec) {
		l := map[string]string{"app": app}
		return &metav1.LabelSelector{MatchLabels: l}, corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/c:1"}}}}
	}
	i32 := func(v int32) *int32 { return &v }
	sel, pt := tmpl("telemetry")
	ds, err := admin.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "telemetry"},
		Spec: appsv1.DaemonSetSpec{Selector: sel, Template: pt}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	o.ds = ds
	// No controller-manager runs here: set the status the DaemonSet controller would.
	o.dsDesired(ctx, 7)
	sel, pt = tmpl("web")
	if o.deploy, err = admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: i32(3), Selector: sel, Template: pt}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr := true
	if _, err := admin.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-6d4f9",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: o.deploy.UID, Controller: &tr}}},
		Spec: appsv1.ReplicaSetSpec{Replicas: i32(3), Selector: sel, Template: pt}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel, pt = tmpl("bare")
	if _, err := admin.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "bare"},
		Spec: appsv1.ReplicaSetSpec{Replicas: i32(2), Selector: sel, Template: pt}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel, pt = tmpl("db")
	if _, err := admin.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: i32(4), Selector: sel, Template: pt}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas: i32(2), MaxReplicas: 12}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return o
}

func (o *objects) dsDesired(ctx context.Context, n int32) {
	ds, err := o.admin.AppsV1().DaemonSets(o.ns).Get(ctx, o.ds.Name, metav1.GetOptions{})
	if err != nil {
		o.t.Fatal(err)
	}
	ds.Status.DesiredNumberScheduled = n
	if _, err := o.admin.AppsV1().DaemonSets(o.ns).UpdateStatus(ctx, ds, metav1.UpdateOptions{}); err != nil {
		o.t.Fatal(err)
	}
}

func (o *objects) scale(ctx context.Context, n int32) {
	d, err := o.admin.AppsV1().Deployments(o.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		o.t.Fatal(err)
	}
	d.Spec.Replicas = &n
	if _, err := o.admin.AppsV1().Deployments(o.ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
		o.t.Fatal(err)
	}
}
