package enforce_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	apiramp "github.com/fanoutdev/fanout/api/ramp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fanoutdev/fanout/collector/enforce"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
)

const (
	web   = "Deployment/default/web"
	other = "Deployment/default/other"
)

// A blocked pod gets EPERM on connect (IPv4 and IPv6) and its open HTTP/2 connections fail within 100 ms of the
// directive; a sibling pod keeps working.
func TestBlockDeniesConnectAndTearsDownConnections(t *testing.T) {
	e := newEnv(t, 20*time.Millisecond)
	_, ctr := e.pod(t, uid(1), web)
	_, sib := e.pod(t, uid(2), other)

	var victims, siblings []*enforcetest.Client
	for _, srv := range []*enforcetest.Server{e.v4, e.v6} {
		victims = append(victims, enforcetest.StartClient(t, ctr, enforcetest.ModeWatch, srv, 5*time.Second))
		siblings = append(siblings, enforcetest.StartClient(t, sib, enforcetest.ModeWatch, srv, 5*time.Second))
	}
	for _, c := range append(victims, siblings...) {
		c.WaitFor(t, "watching", 5*time.Second)
	}

	start := time.Now()
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	applied := time.Since(start)
	for i, c := range victims {
		ev := c.WaitFor(t, "err", 2*time.Second)
		lat := ev.At.Sub(start)
		t.Logf("family %d: Apply returned after %s; open HTTP/2 connection failed %s after the directive: %s",
			4+2*i, applied, lat, ev.Detail)
		if lat > 100*time.Millisecond {
			t.Errorf("open connection failed %s after the directive, want < 100ms", lat)
		}
		wantDenied(t, c.WaitFor(t, "dialerr", 2*time.Second), "re-dial of blocked pod")
	}
	for _, c := range siblings {
		select {
		case ev := <-c.Events:
			t.Errorf("sibling pod disturbed: %+v", ev)
		case <-time.After(100 * time.Millisecond):
		}
	}
	wantOK(t, probeOnce(t, sib, e.v4), "sibling new connection")
	wantOK(t, probeOnce(t, sib, e.v6), "sibling new connection (v6)")

	if got := testutil.ToFloat64(gauge(t, e.enf, "fanout_agent_blocks_active", web)); got != 1 {
		t.Errorf("blocks_active{%s} = %v, want 1", web, got)
	}
	if got := testutil.ToFloat64(gauge(t, e.enf, "fanout_agent_sockets_destroyed_total", web)); got < 2 {
		t.Errorf("sockets_destroyed{%s} = %v, want >= 2", web, got)
	}
	if got := testutil.ToFloat64(gauge(t, e.enf, "fanout_agent_connects_denied_total", web)); got < 2 {
		t.Errorf("connects_denied{%s} = %v, want >= 2", web, got)
	}
}

// gauge extracts one metric of the Enforcer by name and workload label into a standalone collector.
func gauge(t *testing.T, c prometheus.Collector, name, workload string) prometheus.Collector {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "workload" && l.GetValue() == workload {
					v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
					g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
					g.Set(v)
					return g
				}
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	return g
}

// A new pod of a blocked workload is blocked as soon as its cgroup appears: its very first call fails.
func TestNewPodOfBlockedWorkloadBlockedBeforeFirstCall(t *testing.T) {
	e := newEnv(t, 20*time.Millisecond)
	e.pod(t, uid(1), web)
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		u := uid(10 + i)
		e.res.set(u, web) // the informer knows the pod before the kubelet creates its cgroup
		created := time.Now()
		_, ctr := enforcetest.PodCgroup(t, e.pods, u, "app")
		c := enforcetest.StartClient(t, ctr, enforcetest.ModeProbe, e.v4, 200*time.Millisecond)
		ev := c.Next(t, 5*time.Second)
		t.Logf("new pod %d: first call %s %s after its cgroup was created", i, ev.Kind, ev.At.Sub(created))
		wantDenied(t, ev, "first call of a new pod")
	}
	// Watcher latency: cgroup mkdir -> entry in the block list.
	var lats []time.Duration
	for i := range 5 {
		u := uid(40 + i)
		e.res.set(u, web)
		created := time.Now()
		pod, _ := enforcetest.PodCgroup(t, e.pods, u, "app")
		id := enforcetest.CgroupID(t, pod)
		for {
			if _, ok := blockedIDs(t, e.pin)[id]; ok {
				lats = append(lats, time.Since(created))
				break
			}
			if time.Since(created) > 2*time.Second {
				t.Fatalf("new pod %s never blocked", u)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	t.Logf("cgroup created -> blocked (incl. polling): %v", lats)

	// A new pod of another workload is not affected.
	e.res.set(uid(20), other)
	_, ctr := enforcetest.PodCgroup(t, e.pods, uid(20), "app")
	wantOK(t, probeOnce(t, ctr, e.v4), "new pod of another workload")
}

// A pod whose identity arrives after its cgroup is blocked on the pod add event.
func TestPodAddedLateIsBlocked(t *testing.T) {
	e := newEnv(t, time.Hour) // no sweep: only PodAdded can catch it
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web}); err != nil {
		t.Fatal(err)
	}
	_, ctr := enforcetest.PodCgroup(t, e.pods, uid(30), "app")
	time.Sleep(20 * time.Millisecond)
	wantOK(t, probeOnce(t, ctr, e.v4), "pod of unknown workload")
	e.res.set(uid(30), web)
	e.enf.PodAdded(uid(30))
	wantDenied(t, probeOnce(t, ctr, e.v4), "pod after its add event")
}

// Protected workloads and critical pods are never blocked; refusals are counted.
func TestProtectedNeverBlocked(t *testing.T) {
	e := newEnv(t, 20*time.Millisecond)
	const proxy = "DaemonSet/kube-system/kube-proxy"
	_, proxyCtr := e.pod(t, uid(1), proxy)
	err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: proxy})
	if !errors.Is(err, enforce.ErrProtected) {
		t.Fatalf("block of %s: err = %v, want ErrProtected", proxy, err)
	}
	wantOK(t, probeOnce(t, proxyCtr, e.v4), "protected workload")

	// A critical-priority pod of an otherwise blockable workload stays admitted; its sibling is blocked.
	const app = "Deployment/prod/app"
	_, critCtr := e.pod(t, uid(2), app)
	_, normCtr := e.pod(t, uid(3), app)
	e.res.mu.Lock()
	e.res.priority[uid(2)] = "system-cluster-critical"
	e.res.mu.Unlock()
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: app}); err != nil {
		t.Fatal(err)
	}
	wantOK(t, probeOnce(t, critCtr, e.v4), "critical pod")
	wantDenied(t, probeOnce(t, normCtr, e.v4), "normal pod of the same workload")

	if got := testutil.ToFloat64(refusals(t, e.enf, proxy, enforce.ReasonProtected)); got != 1 {
		t.Errorf("refusals{%s,protected} = %v, want 1", proxy, got)
	}
	if got := testutil.ToFloat64(refusals(t, e.enf, app, enforce.ReasonCritical)); got != 1 {
		t.Errorf("refusals{%s,critical} = %v, want 1", app, got)
	}
	for _, w := range []string{"Deployment/kube-system/coredns", "DaemonSet/kube-system/calico-node",
		"DaemonSet/fanout/fanout-agent", "DaemonSet/kube-system/cilium"} {
		if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: w}); !errors.Is(err, enforce.ErrProtected) {
			t.Errorf("block %s: err = %v, want ErrProtected", w, err)
		}
	}
}

func refusals(t *testing.T, c prometheus.Collector, workload, reason string) prometheus.Collector {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != "fanout_agent_block_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lv := map[string]string{}
			for _, l := range m.GetLabel() {
				lv[l.GetName()] = l.GetValue()
			}
			if lv["workload"] == workload && lv["reason"] == reason {
				g.Set(m.GetCounter().GetValue())
			}
		}
	}
	return g
}

// A block expires by its TTL in the kernel even with no agent sweeping, and the agent then removes the entries.
func TestTTLExpiry(t *testing.T) {
	e := newEnv(t, time.Hour) // no sweep: expiry must come from the kernel-side deadline
	_, ctr := e.pod(t, uid(1), web)
	ttl := 400 * time.Millisecond
	start := time.Now()
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: ttl}); err != nil {
		t.Fatal(err)
	}
	wantDenied(t, probeOnce(t, ctr, e.v4), "before TTL")
	time.Sleep(time.Until(start.Add(ttl + 50*time.Millisecond)))
	wantOK(t, probeOnce(t, ctr, e.v4), "after TTL (kernel-side)")
	if n := len(blockedIDs(t, e.pin)); n != 1 {
		t.Fatalf("entries before sweep = %d, want 1 (expired but not yet swept)", n)
	}

	// With a sweeping agent, an expired block disappears from the block list; renewal extends it.
	e2 := newEnv(t, 20*time.Millisecond)
	_, ctr2 := e2.pod(t, uid(2), web)
	if err := e2.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := e2.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // 400 ms after the first directive: renewed, still blocked
	wantDenied(t, probeOnce(t, ctr2, e2.v4), "renewed block")
	deadline := time.Now().Add(2 * time.Second)
	for len(blockedIDs(t, e2.pin)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired block never swept")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantOK(t, probeOnce(t, ctr2, e2.v4), "after renewed TTL")
}

// A release re-admits all the workload's pods on this node together, at the node's fleet-wide place in the ramp
// (api/ramp), not spread over the node's own pods.
func TestReleaseAtNodesPlaceInRamp(t *testing.T) {
	ramp := enforce.Ramp{Duration: 800 * time.Millisecond, Steps: 4}
	node := ""
	for i := 0; node == ""; i++ { // a node released at step 2 or 3: held for a while, then all pods at once
		n := fmt.Sprintf("node-%d", i)
		if k := (apiramp.Schedule{Duration: ramp.Duration, Steps: 4}).Step(n); k >= 2 {
			node = n
		}
	}
	off := apiramp.Schedule{Duration: ramp.Duration, Steps: 4}.Offset(node)
	e := newEnvNode(t, 10*time.Millisecond, node)
	const pods = 8
	for i := range pods {
		e.pod(t, uid(100+i), web)
	}
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute, Epoch: 5}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionRelease, Workload: web, Ramp: ramp, Epoch: 5, Issued: start}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(start.Add(off - 100*time.Millisecond)))
	if n := len(blockedIDs(t, e.pin)); n != pods {
		t.Fatalf("%s before the node's place in the ramp (%s): %d pods blocked, want %d", time.Since(start), off, n, pods)
	}
	time.Sleep(time.Until(start.Add(off + 150*time.Millisecond)))
	if n := len(blockedIDs(t, e.pin)); n != 0 {
		t.Fatalf("%s after release (node place %s): %d pods still blocked", time.Since(start), off, n)
	}
	// The block of the released epoch, delivered late, cannot land; a new trip can.
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute, Epoch: 5}); !errors.Is(err, enforce.ErrStale) {
		t.Fatalf("stale block: err = %v, want ErrStale", err)
	}
	if n := len(blockedIDs(t, e.pin)); n != 0 {
		t.Fatalf("stale block landed on %d pods", n)
	}
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web, TTL: time.Minute, Epoch: 6}); err != nil {
		t.Fatal(err)
	}
	if n := len(blockedIDs(t, e.pin)); n != pods {
		t.Fatalf("new trip blocked %d pods, want %d", n, pods)
	}
}

// A block survives kill -9 of the enforcing process (pinned links and maps) and its restart restores the directive:
// a pod created while no agent ran is blocked by the restarted agent.
func TestBlockSurvivesAgentKill(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	pin := enforcetest.PinDir(t)
	_, pods := enforcetest.NodeCgroup(t)
	v4 := enforcetest.StartServer(t, "127.0.0.1")
	t.Cleanup(func() { enforce.Uninstall(pin) })
	workloads := map[string]string{uid(1): web, uid(2): other, uid(3): web}
	_, ctr := enforcetest.PodCgroup(t, pods, uid(1), "app")
	_, sib := enforcetest.PodCgroup(t, pods, uid(2), "app")
	resJSON, _ := json.Marshal(workloads)

	startAgent := func(block string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envAgent+"=1", envPin+"="+pin, envPods+"="+pods,
			envResolver+"="+string(resJSON), envBlock+"="+block)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			t.Fatalf("agent: %q %v", line, err)
		}
		return cmd
	}

	agent := startAgent(web)
	enforcetest.RegisterEndpoints(t, pin, v4.Addr)
	wantDenied(t, probeOnce(t, ctr, v4), "blocked pod with agent running")
	wantOK(t, probeOnce(t, sib, v4), "sibling with agent running")

	if err := agent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	agent.Wait()
	wantDenied(t, probeOnce(t, ctr, v4), "blocked pod after agent kill -9")
	wantOK(t, probeOnce(t, sib, v4), "sibling after agent kill -9")

	// A pod of the blocked workload created while no agent runs: the restarted agent blocks it on restore.
	_, late := enforcetest.PodCgroup(t, pods, uid(3), "app")
	startAgent("")
	wantDenied(t, probeOnce(t, ctr, v4), "blocked pod after agent restart")
	wantDenied(t, probeOnce(t, late, v4), "pod created while the agent was dead")
	wantOK(t, probeOnce(t, sib, v4), "sibling after restart")
	if n := len(blockedIDs(t, pin)); n != 2 {
		t.Fatalf("block list has %d entries after restart, want 2", n)
	}
}

// When a blocked pod's cgroup is removed (pod deleted), its entry leaves the block list.
// A removed pod's entry goes: through the watcher's IN_DELETE, or, when the pod vanished before the watcher watched
// its parent (seen under CI load), through the sweep's check of known paths.
func TestRemovedPodForgotten(t *testing.T) {
	e := newEnv(t, 100*time.Millisecond)
	pod, ctr := e.pod(t, uid(1), web)
	if err := e.enf.Apply(enforce.Directive{Action: enforce.ActionBlock, Workload: web}); err != nil {
		t.Fatal(err)
	}
	if n := len(blockedIDs(t, e.pin)); n != 1 {
		t.Fatalf("blocked %d, want 1", n)
	}
	if err := syscall.Rmdir(ctr); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(pod); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(blockedIDs(t, e.pin)) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("entry of a removed pod kept")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
