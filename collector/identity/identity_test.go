package identity

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func ctrl(kind, name string) *metav1.OwnerReference {
	t := true
	return &metav1.OwnerReference{Kind: kind, Name: name, Controller: &t}
}

func TestWorkload(t *testing.T) {
	cases := []struct {
		hash  string
		owner *metav1.OwnerReference
		want  string
	}{
		{"7d9f8", ctrl("ReplicaSet", "web-7d9f8"), "Deployment/default/web"},
		{"", ctrl("ReplicaSet", "web-7d9f8"), "ReplicaSet/default/web-7d9f8"},
		{"abc", ctrl("ReplicaSet", "web-7d9f8"), "ReplicaSet/default/web-7d9f8"},
		{"", ctrl("Job", "backup-28391234"), "CronJob/default/backup"},
		{"", ctrl("Job", "migrate"), "Job/default/migrate"},
		{"", ctrl("Job", "migrate-v2"), "Job/default/migrate-v2"},
		{"", ctrl("DaemonSet", "kube-proxy"), "DaemonSet/default/kube-proxy"},
		{"", ctrl("StatefulSet", "etcd"), "StatefulSet/default/etcd"},
		{"", nil, "Pod/default/p1"},
	}
	for _, tc := range cases {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "p1",
			Labels: map[string]string{"pod-template-hash": tc.hash}}}
		if tc.owner != nil {
			pod.OwnerReferences = []metav1.OwnerReference{*tc.owner}
		}
		if got := Workload(pod); got != tc.want {
			t.Errorf("owner %+v hash %q: got %s, want %s", tc.owner, tc.hash, got, tc.want)
		}
	}
	// A non-controller owner does not name the workload.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p",
		OwnerReferences: []metav1.OwnerReference{{Kind: "DaemonSet", Name: "x"}}}}
	if got := Workload(pod); got != "Pod/ns/p" {
		t.Errorf("non-controller owner: got %s", got)
	}
	if got := SystemdUnitWorkload("kubelet.service"); got != "SystemdUnit//kubelet.service" {
		t.Errorf("systemd: %s", got)
	}
	if got := UnknownWorkload(1234); got != "Unknown//cgroup-1234" {
		t.Errorf("unknown: %s", got)
	}
}

func TestPodLogsFallback(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"kube-system_kube-proxy-x7k2p_5a1c9d2e-1111-2222-3333-444455556666", "junk", "a_b"} {
		if err := os.Mkdir(filepath.Join(dir, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := New(Config{PodLogsDir: dir}, nil)
	id, ok := s.PodByUID("5a1c9d2e-1111-2222-3333-444455556666")
	want := PodIdentity{UID: "5a1c9d2e-1111-2222-3333-444455556666", Namespace: "kube-system", Name: "kube-proxy-x7k2p",
		Workload: "Pod/kube-system/kube-proxy-x7k2p", Source: SourcePodLogs}
	if !ok || id != want {
		t.Fatalf("got %+v %v, want %+v", id, ok, want)
	}
	if _, ok := s.PodByUID("nope"); ok {
		t.Fatal("unknown uid resolved")
	}
}

func TestInformer(t *testing.T) {
	t.Parallel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-7d9f8-abcde", UID: "uid-1",
			Labels:          map[string]string{"pod-template-hash": "7d9f8"},
			OwnerReferences: []metav1.OwnerReference{*ctrl("ReplicaSet", "web-7d9f8")}},
		Spec: corev1.PodSpec{NodeName: "node-1"},
	}
	client := fake.NewClientset(pod)
	s := New(Config{NodeName: "node-1", Client: client, PodLogsDir: t.TempDir(), StartJitter: 10 * time.Millisecond}, nil)
	added := make(chan PodIdentity, 4)
	s.OnPodAdd(func(id PodIdentity) { added <- id })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	select {
	case id := <-added:
		if id.Workload != "Deployment/default/web" || id.Name != "web-7d9f8-abcde" {
			t.Fatalf("added %+v", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no add event")
	}
	if id, ok := s.PodByUID("uid-1"); !ok || id.Source != SourceAPIServer || id.Workload != "Deployment/default/web" {
		t.Fatalf("PodByUID: %+v %v", id, ok)
	}
	p2 := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kp", UID: "uid-2",
		OwnerReferences: []metav1.OwnerReference{*ctrl("DaemonSet", "kube-proxy")}}, Spec: corev1.PodSpec{NodeName: "node-1"}}
	if _, err := client.CoreV1().Pods("kube-system").Create(ctx, p2, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-added:
		if id.Workload != "DaemonSet/kube-system/kube-proxy" {
			t.Fatalf("added %+v", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no add event for created pod")
	}
}
