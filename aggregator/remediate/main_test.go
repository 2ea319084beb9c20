package remediate

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/harness"
)

// The one control plane of this test package (nil with -short), with two normal users: remediatorUser gets a
// least-privilege Role in testNS, nobodyUser gets nothing.
var (
	cp    *harness.ControlPlane
	admin kubernetes.Interface
)

const (
	testNS         = "rem"
	remediatorUser = "remediator"
	nobodyUser     = "nobody"
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	err := setup(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "set up control plane:", err)
		if cp != nil {
			cp.Close()
		}
		os.Exit(1)
	}
	code := m.Run()
	if err := cp.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close control plane:", err)
	}
	os.Exit(code)
}

func setup(ctx context.Context) error {
	var err error
	if cp, err = harness.Start(ctx, harness.Config{Users: []string{remediatorUser, nobodyUser}}); err != nil {
		return err
	}
	admin = kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNS}},
		metav1.CreateOptions{}); err != nil {
		return err
	}
	// Least privilege: read and patch the pausable kinds, nothing else (no update, list, delete, scale subresource).
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "fanout-remediate", Namespace: testNS},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"daemonsets", "deployments"},
			Verbs: []string{"get", "patch"}}},
	}
	if _, err := admin.RbacV1().Roles(testNS).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return err
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "fanout-remediate", Namespace: testNS},
		Subjects:   []rbacv1.Subject{{Kind: "User", Name: remediatorUser, APIGroup: rbacv1.GroupName}},
		RoleRef:    rbacv1.RoleRef{Kind: "Role", Name: role.Name, APIGroup: rbacv1.GroupName},
	}
	if _, err := admin.RbacV1().RoleBindings(testNS).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		return err
	}
	// The binding takes effect when the authorizer's cache sees it.
	user := kubernetes.NewForConfigOrDie(cp.RESTConfig(remediatorUser))
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := user.AppsV1().Deployments(testNS).Get(ctx, "absent", metav1.GetOptions{})
		if err == nil || !isForbidden(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("role binding not effective: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func needAPI(t *testing.T) context.Context {
	t.Helper()
	if cp == nil {
		t.Skip("needs the real kube-apiserver (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newDaemonSet(name string, nodeSelector map[string]string) *appsv1.DaemonSet {
	labels := map[string]string{"app": name}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS, Annotations: map[string]string{"owner": "team-a"}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: nodeSelector,
					Tolerations:  []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers:   []corev1.Container{{Name: "c", Image: "example/agent:1"}},
				},
			},
		},
	}
}

func newDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/web:1"}}},
			},
		},
	}
}

func newStatefulSet(name string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: testNS},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/db:1"}}},
			},
		},
	}
}
