package remediate

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/harness"
)

func isForbidden(err error) bool { return apierrors.IsForbidden(err) }

var testCause = Cause{Reason: "synchronized surge on 40/50 nodes", DecisionID: "epoch-7",
	DecidedAt: time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)}

func newRemediator(t *testing.T, c kubernetes.Interface, mod func(*Config)) *Remediator {
	t.Helper()
	cfg := Config{Client: c, Actor: "fanout-aggregator",
		Now: func() time.Time { return time.Date(2026, 11, 24, 17, 5, 0, 0, time.UTC) }}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func getDS(ctx context.Context, t *testing.T, name string) *appsv1.DaemonSet {
	t.Helper()
	ds, err := admin.AppsV1().DaemonSets(testNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func getDeploy(ctx context.Context, t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := admin.AppsV1().Deployments(testNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// checkRecord checks the three annotations a pause writes.
func checkRecord(t *testing.T, ann map[string]string, w Workload, wantPrev string) {
	t.Helper()
	var rec Record
	if err := json.Unmarshal([]byte(ann[AnnotationPaused]), &rec); err != nil {
		t.Fatalf("record annotation %q: %v", ann[AnnotationPaused], err)
	}
	if rec.By != "fanout-aggregator" || rec.Reason != testCause.Reason || rec.DecisionID != "epoch-7" ||
		!rec.DecidedAt.Equal(testCause.DecidedAt) || rec.PausedAt.IsZero() || rec.Action == "" {
		t.Errorf("record: %+v", rec)
	}
	if got := ann[AnnotationPrevious]; got != wantPrev {
		t.Errorf("previous: got %s want %s", got, wantPrev)
	}
	if got := ann[AnnotationUndo]; got != "fanoutctl undo "+w.String() {
		t.Errorf("undo hint: %q", got)
	}
}

func TestPauseUndoDaemonSet(t *testing.T) {
	ctx := needAPI(t)
	for _, tc := range []struct {
		name     string
		selector map[string]string
		wantPrev string
	}{
		{"ds-selector", map[string]string{"kubernetes.io/os": "linux"},
			`{"spec.template.spec.nodeSelector":{"kubernetes.io/os":"linux"}}`},
		{"ds-plain", nil, `{"spec.template.spec.nodeSelector":null}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := admin.AppsV1().DaemonSets(testNS).Create(ctx, newDaemonSet(tc.name, tc.selector), metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			w := Workload{"DaemonSet", testNS, tc.name}
			r := newRemediator(t, admin, nil)
			res, err := r.Pause(ctx, w, testCause)
			if err != nil || res.Action != ActionPaused {
				t.Fatalf("pause: %+v %v", res, err)
			}
			paused := getDS(ctx, t, tc.name)
			ns := paused.Spec.Template.Spec.NodeSelector
			if ns[PauseNodeSelectorKey] != PauseNodeSelectorValue || len(ns) != len(tc.selector)+1 {
				t.Fatalf("paused nodeSelector: %v", ns)
			}
			for k, v := range tc.selector {
				if ns[k] != v {
					t.Errorf("paused nodeSelector lost %s=%s: %v", k, v, ns)
				}
			}
			checkRecord(t, paused.Annotations, w, tc.wantPrev)
			if paused.Annotations["owner"] != "team-a" {
				t.Errorf("unrelated annotation lost: %v", paused.Annotations)
			}

			// Idempotent: the second pause changes nothing and keeps the first record.
			res, err = newRemediator(t, admin, func(c *Config) { c.Now = time.Now }).Pause(ctx, w,
				Cause{Reason: "later trip", DecisionID: "epoch-9"})
			if err != nil || res.Action != ActionAlreadyPaused || res.Patch != nil {
				t.Fatalf("second pause: %+v %v", res, err)
			}
			if again := getDS(ctx, t, tc.name); again.ResourceVersion != paused.ResourceVersion {
				t.Fatalf("second pause wrote: rv %s -> %s", paused.ResourceVersion, again.ResourceVersion)
			}

			res, err = r.Undo(ctx, w)
			if err != nil || res.Action != ActionUndone {
				t.Fatalf("undo: %+v %v", res, err)
			}
			after := getDS(ctx, t, tc.name)
			if !apiequality.Semantic.DeepEqual(before.Spec, after.Spec) {
				t.Fatalf("spec not restored:\nbefore %+v\nafter  %+v", before.Spec, after.Spec)
			}
			// The API server itself counts template changes in this annotation (pause and undo: +2); everything
			// else must be as before.
			const templateGen = "deprecated.daemonset.template.generation"
			if before.Annotations[templateGen] != "1" || after.Annotations[templateGen] != "3" {
				t.Errorf("template generation %s -> %s, want 1 -> 3", before.Annotations[templateGen],
					after.Annotations[templateGen])
			}
			delete(before.Annotations, templateGen)
			delete(after.Annotations, templateGen)
			if !apiequality.Semantic.DeepEqual(before.Annotations, after.Annotations) ||
				!apiequality.Semantic.DeepEqual(before.Labels, after.Labels) {
				t.Fatalf("metadata not restored: annotations %v labels %v", after.Annotations, after.Labels)
			}
			// The template is back to the original one, so its generation's pods are the original ones.
			b, _ := json.Marshal(before.Spec.Template)
			a, _ := json.Marshal(after.Spec.Template)
			if string(a) != string(b) {
				t.Fatalf("template JSON differs:\n%s\n%s", b, a)
			}
			if res, err := r.Undo(ctx, w); err != nil || res.Action != ActionNotPaused {
				t.Fatalf("second undo: %+v %v", res, err)
			}
		})
	}
}

func TestPauseUndoScale(t *testing.T) {
	ctx := needAPI(t)
	before, err := admin.AppsV1().Deployments(testNS).Create(ctx, newDeployment("web", 3), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := Workload{"Deployment", testNS, "web"}
	r := newRemediator(t, admin, nil)
	if res, err := r.Pause(ctx, w, testCause); err != nil || res.Action != ActionPaused {
		t.Fatalf("pause: %+v %v", res, err)
	}
	paused := getDeploy(ctx, t, "web")
	if *paused.Spec.Replicas != 0 {
		t.Fatalf("replicas %d after pause", *paused.Spec.Replicas)
	}
	checkRecord(t, paused.Annotations, w, `{"spec.replicas":3}`)

	// Someone scales it back by hand; pausing again re-applies 0 and keeps the recorded 3.
	one := int32(1)
	paused.Spec.Replicas = &one
	if _, err := admin.AppsV1().Deployments(testNS).Update(ctx, paused, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := r.Pause(ctx, w, Cause{Reason: "second trip"})
	if err != nil || res.Action != ActionRepaused {
		t.Fatalf("re-pause: %+v %v", res, err)
	}
	repaused := getDeploy(ctx, t, "web")
	if *repaused.Spec.Replicas != 0 {
		t.Fatalf("replicas %d after re-pause", *repaused.Spec.Replicas)
	}
	checkRecord(t, repaused.Annotations, w, `{"spec.replicas":3}`)

	if res, err := r.Undo(ctx, w); err != nil || res.Action != ActionUndone {
		t.Fatalf("undo: %+v %v", res, err)
	}
	after := getDeploy(ctx, t, "web")
	if !apiequality.Semantic.DeepEqual(before.Spec, after.Spec) || len(after.Annotations) != 0 {
		t.Fatalf("not restored: replicas %d annotations %v\nbefore %+v\nafter  %+v", *after.Spec.Replicas,
			after.Annotations, before.Spec, after.Spec)
	}

	sts, err := admin.AppsV1().StatefulSets(testNS).Create(ctx, newStatefulSet("db", 2), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ws := Workload{"StatefulSet", testNS, "db"}
	if _, err := r.Pause(ctx, ws, testCause); err != nil {
		t.Fatal(err)
	}
	got, _ := admin.AppsV1().StatefulSets(testNS).Get(ctx, "db", metav1.GetOptions{})
	if *got.Spec.Replicas != 0 {
		t.Fatalf("statefulset replicas %d after pause", *got.Spec.Replicas)
	}
	if _, err := r.Undo(ctx, ws); err != nil {
		t.Fatal(err)
	}
	got, _ = admin.AppsV1().StatefulSets(testNS).Get(ctx, "db", metav1.GetOptions{})
	if !apiequality.Semantic.DeepEqual(sts.Spec, got.Spec) || len(got.Annotations) != 0 {
		t.Fatalf("statefulset not restored: %+v %v", got.Spec, got.Annotations)
	}

	if _, err := r.Pause(ctx, Workload{"Deployment", testNS, "absent"}, testCause); !apierrors.IsNotFound(err) {
		t.Fatalf("absent: want not found, got %v", err)
	}
	if _, err := r.Pause(ctx, Workload{"CronJob", testNS, "x"}, testCause); !errors.Is(err, ErrUnsupportedKind) {
		t.Fatalf("CronJob: want ErrUnsupportedKind, got %v", err)
	}
}

// TestConflictRetried makes a concurrent writer change the object between the GET and the first PATCH: the
// resourceVersion precondition rejects that PATCH (409) and the retry succeeds without losing the other write.
func TestConflictRetried(t *testing.T) {
	ctx := needAPI(t)
	if _, err := admin.AppsV1().Deployments(testNS).Create(ctx, newDeployment("racy", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var patches atomic.Int32
	var once sync.Once
	cfg := cp.RESTConfig(harness.AdminUser)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return rtFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPatch {
				patches.Add(1)
				once.Do(func() {
					d := getDeploy(ctx, t, "racy")
					d.Labels = map[string]string{"touched": "yes"}
					if _, err := admin.AppsV1().Deployments(testNS).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
						t.Errorf("concurrent update: %v", err)
					}
				})
			}
			return rt.RoundTrip(req)
		})
	}
	r := newRemediator(t, kubernetes.NewForConfigOrDie(cfg), nil)
	if _, err := r.Pause(ctx, Workload{"Deployment", testNS, "racy"}, testCause); err != nil {
		t.Fatalf("pause: %v", err)
	}
	d := getDeploy(ctx, t, "racy")
	if patches.Load() != 2 || *d.Spec.Replicas != 0 || d.Labels["touched"] != "yes" {
		t.Fatalf("patches %d replicas %d labels %v", patches.Load(), *d.Spec.Replicas, d.Labels)
	}
	checkRecord(t, d.Annotations, Workload{"Deployment", testNS, "racy"}, `{"spec.replicas":2}`)
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestProtected(t *testing.T) {
	ctx := needAPI(t)
	if _, err := admin.AppsV1().DaemonSets(testNS).Create(ctx, newDaemonSet("critical", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tagged := newDeployment("tagged", 2)
	tagged.Annotations = map[string]string{AnnotationProtected: "true"}
	if _, err := admin.AppsV1().Deployments(testNS).Create(ctx, tagged, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := newRemediator(t, admin, func(c *Config) {
		c.Protected = func(w Workload, obj metav1.Object) bool { return w.Kind == "DaemonSet" && obj.GetName() == "critical" }
	})
	beforeDS, beforeD := getDS(ctx, t, "critical"), getDeploy(ctx, t, "tagged")
	if _, err := r.Pause(ctx, Workload{"DaemonSet", testNS, "critical"}, testCause); !errors.Is(err, ErrProtected) {
		t.Fatalf("predicate: want ErrProtected, got %v", err)
	}
	if _, err := r.Pause(ctx, Workload{"Deployment", testNS, "tagged"}, testCause); !errors.Is(err, ErrProtected) {
		t.Fatalf("annotation: want ErrProtected, got %v", err)
	}
	if getDS(ctx, t, "critical").ResourceVersion != beforeDS.ResourceVersion ||
		getDeploy(ctx, t, "tagged").ResourceVersion != beforeD.ResourceVersion {
		t.Fatal("a protected workload was written")
	}
}

func TestDryRun(t *testing.T) {
	ctx := needAPI(t)
	if _, err := admin.AppsV1().Deployments(testNS).Create(ctx, newDeployment("dry", 4), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := Workload{"Deployment", testNS, "dry"}
	before := getDeploy(ctx, t, "dry")
	dry := newRemediator(t, admin, func(c *Config) { c.DryRun = true })
	res, err := dry.Pause(ctx, w, testCause)
	if err != nil || !res.DryRun || res.Action != ActionPaused {
		t.Fatalf("dry pause: %+v %v", res, err)
	}
	if !strings.Contains(string(res.Patch), `"replicas":0`) || !strings.Contains(string(res.Patch), AnnotationPrevious) {
		t.Fatalf("dry-run patch: %s", res.Patch)
	}
	if got := getDeploy(ctx, t, "dry"); got.ResourceVersion != before.ResourceVersion || *got.Spec.Replicas != 4 {
		t.Fatalf("dry run changed the object: rv %s->%s replicas %d", before.ResourceVersion, got.ResourceVersion,
			*got.Spec.Replicas)
	}
	// Dry-run undo of a really paused workload reports the restore and changes nothing.
	if _, err := newRemediator(t, admin, nil).Pause(ctx, w, testCause); err != nil {
		t.Fatal(err)
	}
	paused := getDeploy(ctx, t, "dry")
	res, err = dry.Undo(ctx, w)
	if err != nil || !res.DryRun || !strings.Contains(string(res.Patch), `"replicas":4`) {
		t.Fatalf("dry undo: %+v %v (patch %s)", res, err, res.Patch)
	}
	if got := getDeploy(ctx, t, "dry"); got.ResourceVersion != paused.ResourceVersion || *got.Spec.Replicas != 0 {
		t.Fatal("dry-run undo changed the object")
	}
}

func TestLeastPrivilege(t *testing.T) {
	ctx := needAPI(t)
	if _, err := admin.AppsV1().DaemonSets(testNS).Create(ctx, newDaemonSet("lp-ds", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AppsV1().Deployments(testNS).Create(ctx, newDeployment("lp-web", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := newRemediator(t, kubernetes.NewForConfigOrDie(cp.RESTConfig(remediatorUser)), nil)
	nobody := newRemediator(t, kubernetes.NewForConfigOrDie(cp.RESTConfig(nobodyUser)), nil)
	for _, w := range []Workload{{"DaemonSet", testNS, "lp-ds"}, {"Deployment", testNS, "lp-web"}} {
		_, err := nobody.Pause(ctx, w, testCause)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "needs get and patch on") {
			t.Fatalf("%s without a role: want a forbidden error with the RBAC hint, got %v", w, err)
		}
		t.Logf("forbidden error: %v", err)
		if _, err := user.Pause(ctx, w, testCause); err != nil {
			t.Fatalf("%s with the least-privilege role: %v", w, err)
		}
		if _, err := nobody.Undo(ctx, w); !apierrors.IsForbidden(err) {
			t.Fatalf("%s undo without a role: want forbidden, got %v", w, err)
		}
		if res, err := user.Undo(ctx, w); err != nil || res.Action != ActionUndone {
			t.Fatalf("%s undo with the role: %+v %v", w, res, err)
		}
	}
	// The role does not cover statefulsets.
	if _, err := admin.AppsV1().StatefulSets(testNS).Create(ctx, newStatefulSet("lp-db", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := user.Pause(ctx, Workload{"StatefulSet", testNS, "lp-db"}, testCause); !apierrors.IsForbidden(err) {
		t.Fatalf("statefulset outside the role: want forbidden, got %v", err)
	}
}
