package placement

import (
	"log/slog"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

func hpa(name, kind, target string, maxR int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: kind, Name: target}, MaxReplicas: maxR}}
}

func TestHPAOverridesAndCap(t *testing.T) {
	w := New(nil, Config{MaxObjects: 4}, slog.New(slog.DiscardHandler))
	three := int32(3)
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns"}, Spec: appsv1.DeploymentSpec{Replicas: &three}}
	w.apply(d, false)
	if n, ok := w.FullPlacement("Deployment/ns/web"); !ok || n != 3 {
		t.Fatalf("replicas: %d %v", n, ok)
	}
	w.apply(hpa("a", "Deployment", "web", 10), false)
	w.apply(hpa("b", "Deployment", "web", 20), false)
	if n, _ := w.FullPlacement("Deployment/ns/web"); n != 20 {
		t.Fatalf("largest HPA max: %d", n)
	}
	// HPA b retargeted elsewhere, then a deleted (as a tombstone): back to the Deployment's replicas.
	w.apply(hpa("b", "StatefulSet", "db", 20), false)
	if n, _ := w.FullPlacement("Deployment/ns/web"); n != 10 {
		t.Fatalf("after retarget: %d", n)
	}
	w.apply(cache.DeletedFinalStateUnknown{Key: "ns/a", Obj: hpa("a", "Deployment", "web", 10)}, false)
	if n, _ := w.FullPlacement("Deployment/ns/web"); n != 3 {
		t.Fatalf("after delete: %d", n)
	}
	// The cap: 1 Deployment + 1 HPA + 2 more, then new objects are dropped.
	for _, name := range []string{"x", "y", "z"} {
		w.apply(&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}}, false)
	}
	if st := w.Stats(); st.Workloads+st.HPAs != 4 || st.Dropped != 1 {
		t.Fatalf("cap: %+v", st)
	}
	// Trimmed objects keep what placement needs, nothing else.
	o, _ := trim(&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: "ns", Labels: map[string]string{"a": "b"}},
		Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 9, CurrentNumberScheduled: 3}})
	ds := o.(*appsv1.DaemonSet)
	if ds.Labels != nil || ds.Status.CurrentNumberScheduled != 0 || ds.Status.DesiredNumberScheduled != 9 {
		t.Fatalf("trim: %+v", ds)
	}
}
