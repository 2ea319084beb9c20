package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// PodImage is the image named in simulated pods' specs (nothing pulls it: the pod's process is podload).
const PodImage = "fanout.local/podload:e2e"

// Workload is a real DaemonSet or Deployment in the API server whose pods the fleet simulates.
type Workload struct {
	Kind      string // DaemonSet | Deployment
	Namespace string
	Name      string
	// owner is what the pods' controller reference points at: the DaemonSet, or the Deployment's ReplicaSet.
	owner     metav1.OwnerReference
	podPrefix string
	labels    map[string]string
}

// ID is the workload's identity as fanout writes it: Kind/namespace/name.
func (w *Workload) ID() string { return w.Kind + "/" + w.Namespace + "/" + w.Name }

// EnsureNamespace creates a namespace unless it exists.
func EnsureNamespace(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

func podTemplate(labels map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: PodImage}}},
	}
}

// CreateDaemonSet creates a DaemonSet (nothing runs its controller: the fleet creates its pods).
func CreateDaemonSet(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*Workload, error) {
	labels := map[string]string{"app.kubernetes.io/name": name}
	ds, err := cs.AppsV1().DaemonSets(namespace).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create daemonset %s/%s: %w", namespace, name, err)
	}
	return &Workload{
		Kind: "DaemonSet", Namespace: namespace, Name: name, labels: labels, podPrefix: name,
		owner: controllerRef("apps/v1", "DaemonSet", ds.Name, string(ds.UID)),
	}, nil
}

// CreateDeployment creates a Deployment and the ReplicaSet a deployment controller would (name <deploy>-<hash>,
// label pod-template-hash, controller reference to the Deployment); pods are owned by the ReplicaSet.
func CreateDeployment(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*Workload, error) {
	labels := map[string]string{"app.kubernetes.io/name": name}
	dep, err := cs.AppsV1().Deployments(namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create deployment %s/%s: %w", namespace, name, err)
	}
	hash := randomHex(5)
	rsLabels := map[string]string{"pod-template-hash": hash}
	for k, v := range labels {
		rsLabels[k] = v
	}
	rsRef := controllerRef("apps/v1", "Deployment", dep.Name, string(dep.UID))
	rs, err := cs.AppsV1().ReplicaSets(namespace).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: name + "-" + hash, Namespace: namespace, Labels: rsLabels,
			OwnerReferences: []metav1.OwnerReference{rsRef},
		},
		Spec: appsv1.ReplicaSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: rsLabels},
			Template: podTemplate(rsLabels),
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create replicaset for %s/%s: %w", namespace, name, err)
	}
	return &Workload{
		Kind: "Deployment", Namespace: namespace, Name: name, labels: rsLabels, podPrefix: rs.Name,
		owner: controllerRef("apps/v1", "ReplicaSet", rs.Name, string(rs.UID)),
	}, nil
}

// createPod creates a Running, best-effort pod of w bound to node, with a container status naming containerID.
func createPod(ctx context.Context, cs kubernetes.Interface, w *Workload, node, containerID string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: w.podPrefix + "-" + randomHex(5), Namespace: w.Namespace, Labels: w.labels,
			OwnerReferences: []metav1.OwnerReference{w.owner},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Image: PodImage}}},
	}
	pod, err := cs.CoreV1().Pods(w.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod of %s on %s: %w", w.ID(), node, err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{
		Phase: corev1.PodRunning, QOSClass: corev1.PodQOSBestEffort, HostIP: "127.0.0.1", PodIP: "127.0.0.1",
		StartTime:  &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}},
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "main", Image: PodImage, Ready: true, ContainerID: "containerd://" + containerID,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
	pod, err = cs.CoreV1().Pods(w.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("set pod %s/%s running: %w", w.Namespace, pod.Name, err)
	}
	return pod, nil
}

// createNode registers a Node object (no kubelet heartbeats it; nothing here evicts).
func createNode(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "fanout.dev/simulated": "true"}},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", name, err)
	}
	return nil
}

// GrantClusterRead lets normal users get/list/watch the given core resources cluster-wide (one ClusterRole and one
// ClusterRoleBinding named name).
func GrantClusterRead(ctx context.Context, cs kubernetes.Interface, name string, resources []string, users ...string) error {
	return GrantRules(ctx, cs, name, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: resources, Verbs: []string{"get", "list", "watch"}}}, users...)
}

// GrantRules binds users to a ClusterRole named name holding rules (both created unless they exist).
func GrantRules(ctx context.Context, cs kubernetes.Interface, name string, rules []rbacv1.PolicyRule, users ...string) error {
	_, err := cs.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      rules,
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create clusterrole %s: %w", name, err)
	}
	subjects := make([]rbacv1.Subject, 0, len(users))
	for _, u := range users {
		subjects = append(subjects, rbacv1.Subject{Kind: rbacv1.UserKind, Name: u, APIGroup: rbacv1.GroupName})
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Subjects:   subjects,
		RoleRef:    rbacv1.RoleRef{Kind: "ClusterRole", Name: name, APIGroup: rbacv1.GroupName},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create clusterrolebinding %s: %w", name, err)
	}
	return nil
}

func controllerRef(apiVersion, kind, name, uid string) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: types.UID(uid), Controller: &t, BlockOwnerDeletion: &t}
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))[:n]
}
