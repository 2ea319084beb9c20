package harness

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlaneLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a real kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cp, err := Start(ctx, Config{Users: []string{"load-user"}, AuditUsers: []string{"load-user"}, Logger: logger})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	pids := cp.PIDs()
	if len(pids) != 2 {
		t.Fatalf("want 2 processes (etcd, kube-apiserver), got %v", pids)
	}

	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(AdminUser))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e"}}
	if _, err := admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	labels := map[string]string{"app": "telemetry"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "telemetry", Namespace: "e2e"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "example/agent:1"}}},
			},
		},
	}
	ds, err = admin.AppsV1().DaemonSets("e2e").Create(ctx, ds, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create daemonset: %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "telemetry-abcde", Namespace: "e2e", Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Controller: ptr(true)}},
		},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "agent", Image: "example/agent:1"}}},
	}
	pod, err = admin.CoreV1().Pods("e2e").Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	if pod.UID == "" || pod.OwnerReferences[0].UID != ds.UID {
		t.Fatalf("pod not owned by the daemonset: %+v", pod.OwnerReferences)
	}
	onNode, err := admin.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=node-1"})
	if err != nil || len(onNode.Items) != 1 {
		t.Fatalf("node-scoped list: %v items, err %v", len(onNode.Items), err)
	}

	user := kubernetes.NewForConfigOrDie(cp.RESTConfig("load-user"))
	if _, err := user.CoreV1().Pods("e2e").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("normal user without a binding: want forbidden, got %v", err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: "e2e"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
	}
	if _, err := admin.RbacV1().Roles("e2e").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: "e2e"},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: "load-user", APIGroup: "rbac.authorization.k8s.io"}},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: "pod-reader", APIGroup: "rbac.authorization.k8s.io"},
	}
	if _, err := admin.RbacV1().RoleBindings("e2e").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create rolebinding: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := user.CoreV1().Pods("e2e").List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("normal user still denied after binding: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The audit log counts the normal user's requests (the forbidden LIST, the allowed one, maybe retries) and only
	// that user's.
	var counts map[string]*AuditCount
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if counts, err = cp.AuditCounts(); err != nil {
			t.Fatal(err)
		}
		if c := counts["load-user"]; c != nil && c.ByVerb["list"] >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if c := counts["load-user"]; c == nil || c.ByVerb["list"] < 2 || len(counts) != 1 {
		t.Fatalf("audit counts: %+v", counts)
	}

	if err := cp.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := cp.Close(); err != nil {
		t.Fatalf("second close must be a no-op, got %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
	if _, err := os.Stat(cp.WorkDir); !os.IsNotExist(err) {
		t.Errorf("work dir %s not removed: %v", cp.WorkDir, err)
	}
}

func ptr[T any](v T) *T { return &v }
