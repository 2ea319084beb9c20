package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/aggregator/remediate"
	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/e2e/harness"
)

type tokenAuth string

func (t tokenAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenAuth) RequireTransportSecurity() bool { return false }

// TestRemediationPausesAHeldTrip runs the aggregator against a real kube-apiserver: a workload tripped by hand and
// held past --remediate.after is paused through the API (with its undo record); a protected one is not.
func TestRemediationPausesAHeldTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cp, err := harness.Start(ctx, harness.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	kc, err := cp.WriteKubeconfig(harness.AdminUser)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"telemetry-agent", "log-shipper"} {
		labels := map[string]string{"app": name}
		ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "monitoring"},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example/x:1"}}}}}}
		if _, err := cs.AppsV1().DaemonSets("monitoring").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	agentTokens, adminTokens := filepath.Join(dir, "agents"), filepath.Join(dir, "admins")
	const admin = "admin-token-0123456789abcdef"
	if err := os.WriteFile(agentTokens, []byte("agent-token-0123456789abcdef node-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(adminTokens, []byte(admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(runCtx, []string{"--listen", addr, "--metrics.listen", "", "--auth.agent-token-file", agentTokens,
			"--auth.admin-token-file", adminTokens, "--insecure", "--kubeconfig", kc, "--remediate.after", "1s",
			"--remediate.interval", "200ms", "--killswitch.protected", "DaemonSet/monitoring/log-shipper"}, &errb)
	}()
	defer func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("aggregator exit %d: %s", code, errb.String())
		}
	}()

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(tokenAuth(admin)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := api.NewAggregatorClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := client.Trip(ctx, &api.ManualRequest{Workload: "DaemonSet/monitoring/telemetry-agent", Reason: "test", Ttl: durationpb.New(time.Hour)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("manual trip: %v (aggregator: %s)", err, errb.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := client.Trip(ctx, &api.ManualRequest{Workload: "DaemonSet/monitoring/log-shipper", Reason: "test", Ttl: durationpb.New(time.Hour)}); err == nil {
		t.Log("protected workload trip accepted by the switch; remediation must still refuse it")
	}

	var paused *appsv1.DaemonSet
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ds, err := cs.AppsV1().DaemonSets("monitoring").Get(ctx, "telemetry-agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ds.Annotations[remediate.AnnotationPaused] != "" {
			paused = ds
			break
		}
	}
	if paused == nil {
		t.Fatalf("held trip was not remediated within 20 s; aggregator log:\n%s", errb.String())
	}
	if paused.Spec.Template.Spec.NodeSelector["fanout.dev/paused"] != "true" {
		t.Fatalf("paused DaemonSet has no unschedulable nodeSelector: %v", paused.Spec.Template.Spec.NodeSelector)
	}
	t.Logf("paused: %s", paused.Annotations[remediate.AnnotationPaused])
	other, err := cs.AppsV1().DaemonSets("monitoring").Get(ctx, "log-shipper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if other.Annotations[remediate.AnnotationPaused] != "" || len(other.Spec.Template.Spec.NodeSelector) != 0 {
		t.Fatalf("protected workload was paused: %v", other.Annotations)
	}
}
