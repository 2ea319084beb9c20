package remediate

import (
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestEscalator(t *testing.T) {
	ctx := needAPI(t)
	if _, err := admin.AppsV1().Deployments(testNS).Create(ctx, newDeployment("esc-web", 3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AppsV1().StatefulSets(testNS).Create(ctx, newStatefulSet("esc-db", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The least-privilege user may patch deployments but not statefulsets: that pause fails and is retried later.
	e, err := NewEscalator(EscalatorConfig{After: 10 * time.Minute, RetryEvery: time.Minute,
		Remediator: newRemediator(t, kubernetes.NewForConfigOrDie(cp.RESTConfig(remediatorUser)), nil)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC)
	tripped := map[string]Cause{
		"Deployment/rem/esc-web":  {Reason: "surge", DecisionID: "1"},
		"StatefulSet/rem/esc-db":  {Reason: "surge", DecisionID: "2"},
		"Pod/rem/bare":            {Reason: "surge", DecisionID: "3"},
		"Deployment/rem/released": {Reason: "surge", DecisionID: "4"},
	}
	if out := e.Tick(ctx, t0, tripped); len(out) != 0 {
		t.Fatalf("tick at t0: %+v", out)
	}
	delete(tripped, "Deployment/rem/released") // released before the hold time: never paused
	if out := e.Tick(ctx, t0.Add(9*time.Minute), tripped); len(out) != 0 {
		t.Fatalf("tick before After: %+v", out)
	}
	if *getDeploy(ctx, t, "esc-web").Spec.Replicas != 3 {
		t.Fatal("paused before After")
	}
	out := e.Tick(ctx, t0.Add(10*time.Minute), tripped)
	got := map[string]Outcome{}
	for _, o := range out {
		got[o.Workload] = o
	}
	if len(out) != 2 || got["Deployment/rem/esc-web"].Err != nil || got["Deployment/rem/esc-web"].Result.Action != ActionPaused ||
		!apierrors.IsForbidden(got["StatefulSet/rem/esc-db"].Err) {
		t.Fatalf("tick at After: %+v", out)
	}
	if d := getDeploy(ctx, t, "esc-web"); *d.Spec.Replicas != 0 || d.Annotations[AnnotationPaused] == "" {
		t.Fatalf("not paused: replicas %d annotations %v", *d.Spec.Replicas, d.Annotations)
	}
	// Next tick: the paused one is done, the failed one waits for RetryEvery.
	if out := e.Tick(ctx, t0.Add(10*time.Minute+30*time.Second), tripped); len(out) != 0 {
		t.Fatalf("tick before retry: %+v", out)
	}
	out = e.Tick(ctx, t0.Add(11*time.Minute), tripped)
	if len(out) != 1 || out[0].Workload != "StatefulSet/rem/esc-db" || !apierrors.IsForbidden(out[0].Err) {
		t.Fatalf("retry tick: %+v", out)
	}
	// Released and tripped again: the clock starts over (the pause stays: undo is a human decision).
	delete(tripped, "StatefulSet/rem/esc-db")
	e.Tick(ctx, t0.Add(12*time.Minute), tripped)
	tripped["StatefulSet/rem/esc-db"] = Cause{Reason: "surge again"}
	if out := e.Tick(ctx, t0.Add(13*time.Minute), tripped); len(out) != 0 {
		t.Fatalf("re-tripped workload attempted before After: %+v", out)
	}
	if _, err := NewEscalator(EscalatorConfig{Remediator: e.cfg.Remediator}); err == nil {
		t.Fatal("After 0: want an error")
	}
}
