package fanoutguard

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/fleet"
	"github.com/fanoutdev/fanout/e2e/harness"
	"github.com/fanoutdev/fanout/e2e/incident"
	"github.com/fanoutdev/fanout/internal/testpriv"
)

// TestAgentsAttributeSimulatedPods runs the real fanout-agent on two simulated nodes of a real API server: each agent
// counts its own node's pods under their workload identity, and only those (nodes are isolated), and the agents'
// own API footprint is visible in the audit log.
func TestAgentsAttributeSimulatedPods(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver, a simulated fleet and fanout agents")
	}
	testpriv.Require(t, "agents: BPF and cgroups")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	work := t.TempDir()
	agentUsers := []string{incident.AgentUserPrefix + "node-1", incident.AgentUserPrefix + "node-2"}
	cp, err := harness.Start(ctx, harness.Config{Users: append([]string{"load"}, agentUsers...), AuditUsers: agentUsers, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	const ns = "guard-e2e"
	if err := fleet.EnsureNamespace(ctx, admin, ns); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := fleet.GrantClusterRead(ctx, admin, "load-read", []string{"configmaps"}, "load"); err != nil {
		t.Fatal(err)
	}
	if err := fleet.GrantRules(ctx, admin, "agent-read", []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets", "daemonsets", "deployments"}, Verbs: []string{"get", "list", "watch"}},
	}, agentUsers...); err != nil {
		t.Fatal(err)
	}
	podload, err := fleet.BuildPodload(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	agentBin, aggBin, err := Build(ctx, work)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(ctx, fleet.Config{Nodes: 2, PodloadBin: podload, LogDir: work, Logger: logger}, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g := New(Config{AgentBin: agentBin, AggregatorBin: aggBin, NoAggregator: true, Logger: logger})
	env := &incident.Env{ControlPlane: cp, Fleet: f, WorkDir: work, Logger: logger}
	if err := g.Start(ctx, env); err != nil {
		g.Close()
		t.Fatalf("start agents: %v (logs in %s/fanout)", err, work)
	}
	defer g.Close()

	ds, err := fleet.CreateDaemonSet(ctx, admin, ns, "getter")
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := cp.WriteKubeconfig("load")
	rates := map[string]int{"node-1": 10, "node-2": 25}
	pods := map[string]*fleet.Pod{}
	for _, n := range f.Nodes {
		p, err := f.StartPod(ctx, ds, n, fleet.PodSpec{Kubeconfig: kc, Args: []string{
			"--mode=get", "--namespace=" + ns, "--name=cfg", fmt.Sprintf("--rate=%d", rates[n.Name]), "--duration=2m"}})
		if err != nil {
			t.Fatal(err)
		}
		pods[n.Name] = p
	}
	time.Sleep(6 * time.Second)
	for _, n := range f.Nodes {
		text, err := g.Scrape(ctx, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		got := metricValue(text, "fanout_workload_api_requests_total", `workload="`+ds.ID()+`"`)
		own := metricValue(text, "fanout_pod_api_requests_total", `pod="`+pods[n.Name].Object.Name+`"`)
		other := "node-1"
		if n.Name == "node-1" {
			other = "node-2"
		}
		foreign := metricValue(text, "fanout_pod_api_requests_total", `pod="`+pods[other].Object.Name+`"`)
		t.Logf("%s: workload requests %.0f, own pod %.0f, other node's pod %.0f", n.Name, got, own, foreign)
		// ~5 s of calls at the node's rate (a segment per small GET on a reused HTTP/2 connection).
		if want := float64(rates[n.Name]) * 3; got < want || own < want {
			t.Errorf("%s: agent counted %.0f requests for %s (pod %.0f), want >= %.0f", n.Name, got, ds.ID(), own, want)
		}
		if foreign != 0 {
			t.Errorf("%s: counted another node's pod (%.0f)", n.Name, foreign)
		}
	}
	counts, err := cp.AuditCounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range agentUsers {
		c := counts[u]
		if c == nil || c.Total == 0 || c.Total > 20 {
			t.Errorf("agent %s API requests: %+v (want a handful: one LIST and a WATCH)", u, c)
		} else {
			t.Logf("agent %s API requests after start-up: %d %v", u, c.Total, c.ByVerb)
		}
	}
}

// metricValue sums the samples of a metric whose label set contains match.
func metricValue(text, name, match string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{([^}]*)\}\s+(\S+)$`)
	var sum float64
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if regexp.MustCompile(regexp.QuoteMeta(match)).MatchString(m[1]) {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}
