package remediate

import (
	"bytes"
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func runUndo(ctx context.Context, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := RunUndoCLI(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUndoCLIUsage(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{nil, {"Deployment/web"}, {"Pod/default/web"}, {"--bogus", "Deployment/a/b"}} {
		if code, _, stderr := runUndo(ctx, args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	if code, _, stderr := runUndo(ctx, "--kubeconfig", "/nonexistent/kubeconfig", "Deployment/a/b"); code != 1 ||
		!strings.Contains(stderr, "kubeconfig") {
		t.Errorf("missing kubeconfig: exit %d, stderr %q", code, stderr)
	}
}

func TestUndoCLI(t *testing.T) {
	ctx := needAPI(t)
	before, err := admin.AppsV1().Deployments(testNS).Create(ctx, newDeployment("cli-web", 5), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AppsV1().DaemonSets(testNS).Create(ctx, newDaemonSet("cli-ds", map[string]string{"pool": "a"}),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := newRemediator(t, admin, nil)
	for _, w := range []Workload{{"Deployment", testNS, "cli-web"}, {"DaemonSet", testNS, "cli-ds"}} {
		if _, err := r.Pause(ctx, w, testCause); err != nil {
			t.Fatal(err)
		}
	}
	userKC, err := cp.WriteKubeconfig(remediatorUser)
	if err != nil {
		t.Fatal(err)
	}
	nobodyKC, err := cp.WriteKubeconfig(nobodyUser)
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runUndo(ctx, "--kubeconfig", nobodyKC, "Deployment/rem/cli-web")
	if code != 1 || !strings.Contains(stderr, "forbidden") || !strings.Contains(stderr, "needs get and patch") {
		t.Fatalf("nobody: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runUndo(ctx, "--kubeconfig", userKC, "--dry-run", "Deployment/rem/cli-web")
	if code != 0 || !strings.Contains(stdout, "would undo (dry run)") || !strings.Contains(stdout, `"replicas":5`) {
		t.Fatalf("dry run: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if d := getDeploy(ctx, t, "cli-web"); *d.Spec.Replicas != 0 {
		t.Fatalf("dry run changed replicas to %d", *d.Spec.Replicas)
	}

	code, stdout, stderr = runUndo(ctx, "--kubeconfig", userKC, "Deployment/rem/cli-web", "DaemonSet/rem/cli-ds")
	t.Logf("fanoutctl undo output:\n%s", stdout)
	if code != 0 || stderr != "" ||
		!strings.Contains(stdout, "Deployment/rem/cli-web: undone (paused 2026-11-24T17:05:00Z by fanout-aggregator: "+testCause.Reason+", decision epoch-7); restored spec.replicas=5") ||
		!strings.Contains(stdout, `DaemonSet/rem/cli-ds: undone`) ||
		!strings.Contains(stdout, `restored spec.template.spec.nodeSelector={"pool":"a"}`) {
		t.Fatalf("undo: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	after := getDeploy(ctx, t, "cli-web")
	if *after.Spec.Replicas != 5 || len(after.Annotations) != 0 || after.Spec.Template.String() != before.Spec.Template.String() {
		t.Fatalf("not restored: replicas %d annotations %v", *after.Spec.Replicas, after.Annotations)
	}
	if ds := getDS(ctx, t, "cli-ds"); len(ds.Spec.Template.Spec.NodeSelector) != 1 || ds.Spec.Template.Spec.NodeSelector["pool"] != "a" {
		t.Fatalf("daemonset nodeSelector %v", ds.Spec.Template.Spec.NodeSelector)
	}

	// Again: nothing to undo, still success.
	code, stdout, _ = runUndo(ctx, "--kubeconfig", userKC, "Deployment/rem/cli-web")
	if code != 0 || !strings.Contains(stdout, "not paused, nothing to undo") {
		t.Fatalf("second undo: exit %d stdout %q", code, stdout)
	}
	// A missing workload is an error.
	if code, _, stderr := runUndo(ctx, "--kubeconfig", userKC, "Deployment/rem/absent"); code != 1 || !strings.Contains(stderr, "not found") {
		t.Fatalf("absent: exit %d stderr %q", code, stderr)
	}
}
