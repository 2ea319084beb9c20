package fleet

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/latency"
	"github.com/fanoutdev/fanout/internal/testpriv"
)

func requirePrivileged(t *testing.T) {
	t.Helper()
	testpriv.Require(t, "cgroup creation")
}

func TestFleetOnRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver")
	}
	requirePrivileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cp, err := harness.Start(ctx, harness.Config{Users: []string{"sys-user", "telemetry-user", "probe-user"}, Logger: logger})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	defer cp.Close()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))

	const ns = "fleet-e2e"
	if err := Seed(ctx, admin, SeedConfig{Namespace: ns, Pods: 60, ConfigMaps: 40}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "target", Namespace: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := GrantClusterRead(ctx, admin, "fleet-e2e-read", []string{"pods", "configmaps"}, "sys-user", "telemetry-user", "probe-user"); err != nil {
		t.Fatal(err)
	}
	sysDS, err := CreateDaemonSet(ctx, admin, ns, "node-agent")
	if err != nil {
		t.Fatal(err)
	}
	telemetry, err := CreateDeployment(ctx, admin, ns, "telemetry")
	if err != nil {
		t.Fatal(err)
	}
	if telemetry.ID() != "Deployment/fleet-e2e/telemetry" || sysDS.ID() != "DaemonSet/fleet-e2e/node-agent" {
		t.Fatalf("ids: %s %s", telemetry.ID(), sysDS.ID())
	}

	bin, err := BuildPodload(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(ctx, Config{Nodes: 2, PodloadBin: bin, LogDir: t.TempDir(), Logger: logger}, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sysKC, _ := cp.WriteKubeconfig("sys-user")
	telKC, _ := cp.WriteKubeconfig("telemetry-user")
	var pods []*Pod
	for _, n := range f.Nodes {
		p, err := f.StartPod(ctx, sysDS, n, PodSpec{Kubeconfig: sysKC, Args: []string{"--mode=get", "--rate=20", "--namespace=" + ns, "--name=target", "--duration=1m"}})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	tel, err := f.StartPod(ctx, telemetry, f.Nodes[0], PodSpec{Kubeconfig: telKC, Args: []string{"--mode=list", "--resource=pods", "--concurrency=2", "--duration=1m"}})
	if err != nil {
		t.Fatal(err)
	}
	pods = append(pods, tel)
	rawDS, err := CreateDaemonSet(ctx, admin, ns, "raw-lister")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := f.StartPod(ctx, rawDS, f.Nodes[1], PodSpec{Kubeconfig: telKC, Args: []string{"--mode=list", "--resource=configmaps", "--decode=false", "--duration=1m"}})
	if err != nil {
		t.Fatal(err)
	}
	pods = append(pods, raw)

	// Pod objects: bound to the node, owned by the workload's controller, UID in the cgroup path; processes born there.
	for _, p := range pods {
		got, err := admin.CoreV1().Pods(ns).Get(ctx, p.Object.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.NodeName != p.Node.Name || got.Status.Phase != corev1.PodRunning || len(got.OwnerReferences) != 1 {
			t.Fatalf("pod %s: node %q phase %q owners %v", got.Name, got.Spec.NodeName, got.Status.Phase, got.OwnerReferences)
		}
		wantKind := map[string]string{"DaemonSet": "DaemonSet", "Deployment": "ReplicaSet"}[p.Workload.Kind]
		if got.OwnerReferences[0].Kind != wantKind {
			t.Fatalf("pod %s owned by %s, want %s", got.Name, got.OwnerReferences[0].Kind, wantKind)
		}
		cg, err := p.InCgroup()
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimPrefix(p.ContainerDir, f.Mount)
		if cg != want || !strings.Contains(cg, "/"+p.Node.Name+"/kubepods/besteffort/pod"+string(got.UID)+"/") {
			t.Fatalf("pod process %d in cgroup %q, want %q", p.Pid, cg, want)
		}
	}

	probeCS := kubernetes.NewForConfigOrDie(cp.RESTConfig("probe-user"))
	probe := latency.New(latency.Config{Interval: 50 * time.Millisecond}, func(ctx context.Context) error {
		_, err := probeCS.CoreV1().ConfigMaps(ns).Get(ctx, "target", metav1.GetOptions{})
		return err
	})
	pctx, pcancel := context.WithTimeout(ctx, 4*time.Second)
	probe.Run(pctx)
	pcancel()
	st, err := latency.Summarize(probe.Samples())
	if err != nil || st.N < 20 || st.Errors != 0 {
		t.Fatalf("probe: %v %v", st, err)
	}
	t.Logf("unrelated client GET latency with a 2-worker LIST loop running: %s", st)

	// The workloads' own reports arrive per second.
	var sys, telp, rawp Point
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		sys = f.Recorder.Sum(sysDS.ID(), 0, 1<<62)
		telp = f.Recorder.Sum(telemetry.ID(), 0, 1<<62)
		rawp = f.Recorder.Sum(rawDS.ID(), 0, 1<<62)
		if sys.OK >= 100 && telp.OK >= 5 && rawp.OK >= 5 {
			break
		}
	}
	if sys.OK < 100 || sys.Err+sys.Denied != 0 {
		t.Fatalf("system daemonset: %+v (last err %q)", sys, f.Recorder.LastErr(sysDS.ID()))
	}
	// Every cluster-wide LIST returns the 60 seeded pods and the fleet's own 4.
	if want := telp.OK * int64(60+len(pods)); telp.OK < 5 || telp.Items != want || telp.Err+telp.Denied != 0 {
		t.Fatalf("telemetry: %+v, want %d items (last err %q)", telp, want, f.Recorder.LastErr(telemetry.ID()))
	}
	// Undecoded LISTs of 41 ConfigMaps (40 seeded with 2 KiB each, the target) carry at least 80 KiB each.
	if rawp.OK < 5 || rawp.Bytes < rawp.OK*40*2048 || rawp.Err+rawp.Denied != 0 {
		t.Fatalf("raw lister: %+v (last err %q)", rawp, f.Recorder.LastErr(rawDS.ID()))
	}
	t.Logf("system daemonset: %+v; telemetry: %+v; raw lister: %+v", sys, telp, rawp)

	pids := []int{}
	for _, p := range f.Pods() {
		pids = append(pids, p.Pid)
	}
	root := f.Root
	if err := f.Close(); err != nil {
		t.Fatalf("fleet close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("pod process %d still exists after Close: %v", pid, err)
		}
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("fleet cgroup %s still exists: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "node-1")); !os.IsNotExist(err) {
		t.Errorf("node cgroup still exists")
	}
}
