package enforce

import (
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/api/protect"
	"github.com/fanoutdev/fanout/api/ramp"
)

// Finding 6: with default flags, a DaemonSet with one pod per node comes back over the ramp duration (each node at
// its fleet-wide place), not within the jitter; a release that names no ramp (the workload vanished from the sets)
// still ramps; the node's place is the api/ramp contract's.
func TestReleaseIsPlacedFleetWide(t *testing.T) {
	var cfg Config
	cfg.PinDir, cfg.PodsCgroup = "/x", "/y"
	if err := cfg.defaults(); err != nil {
		t.Fatal(err)
	}
	wall := time.Unix(1_000_000, 0)
	aggRamp := Ramp{Duration: 2 * time.Minute, Steps: 4, Jitter: 5 * time.Second}
	for name, d := range map[string]Directive{
		"aggregator ramp": {Action: ActionRelease, Workload: "DaemonSet/mon/agent", Ramp: aggRamp, Issued: wall},
		"vanished":        {Action: ActionRelease, Workload: "DaemonSet/mon/agent"},
	} {
		lo, hi := time.Duration(1<<62), time.Duration(0)
		perStep := map[time.Duration]int{}
		for i := range 64 {
			cfg.Node = fmt.Sprintf("node-%d", i)
			r, wait := releaseDelay(cfg, d, wall)
			if r == (Ramp{}) {
				t.Fatalf("%s: release without a ramp", name)
			}
			want := ramp.Schedule{Start: wall, Duration: r.Duration, Steps: uint(r.Steps), Jitter: r.Jitter}.Offset(cfg.Node)
			if wait != want {
				t.Fatalf("%s: node %s waits %s, api/ramp says %s", name, cfg.Node, wait, want)
			}
			lo, hi = min(lo, wait), max(hi, wait)
			perStep[wait/(30*time.Second)]++
		}
		if spread := hi - lo; spread < 90*time.Second {
			t.Errorf("%s: 64 nodes re-admitted within %s, want spread over the 2m ramp (>= 90s)", name, spread)
		}
		if len(perStep) != 4 {
			t.Errorf("%s: nodes per 30s step %v, want all 4 steps used", name, perStep)
		}
	}
	// A release issued a minute ago resumes where the fleet is: nodes whose time has passed go at once.
	cfg.Node = "node-1"
	_, full := releaseDelay(cfg, Directive{Ramp: aggRamp, Issued: wall}, wall)
	_, late := releaseDelay(cfg, Directive{Ramp: aggRamp, Issued: wall.Add(-time.Minute)}, wall)
	if late != max(full-time.Minute, 0) {
		t.Errorf("late release: %s, want %s", late, max(full-time.Minute, 0))
	}
	// A start ahead of this node's clock (skew) counts from receipt.
	if _, ahead := releaseDelay(cfg, Directive{Ramp: aggRamp, Issued: wall.Add(time.Hour)}, wall); ahead != full {
		t.Errorf("skewed start: %s, want %s", ahead, full)
	}
}

func TestProtectedPatterns(t *testing.T) {
	p := protect.MustCompile(DefaultProtected)
	for w, want := range map[string]bool{
		"Deployment/kube-system/coredns":         true,
		"DaemonSet/kube-system/kube-proxy":       true,
		"DaemonSet/calico-system/calico-node":    true,
		"DaemonSet/kube-system/cilium":           true,
		"DaemonSet/kube-flannel/kube-flannel-ds": true,
		"DaemonSet/fanout-system/fanout-agent":   true,
		"Pod/kube-system/kube-apiserver-node1":   true,
		"Deployment/default/web":                 false,
		"Deployment/kube-system/metrics-server":  false,
		"Deployment/default/coredns-lookalike":   false,
	} {
		if got := p.Match(w); got != want {
			t.Errorf("protected(%s) = %v, want %v", w, got, want)
		}
	}
}

func TestDirectiveValidate(t *testing.T) {
	for _, d := range []Directive{
		{Action: ActionBlock},
		{Action: "nuke", Workload: "Pod/a/b"},
		{Action: ActionBlock, Workload: "Pod/a/b", TTL: -1},
		{Action: ActionRelease, Workload: "Pod/a/b", Ramp: Ramp{Steps: -1}},
	} {
		if d.validate() == nil {
			t.Errorf("validate(%+v) = nil, want error", d)
		}
	}
	if err := (Directive{Action: ActionRelease, Workload: "Pod/a/b"}).validate(); err != nil {
		t.Fatal(err)
	}
}

func TestFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--enforce.default-ttl=2m", "--enforce.protected=*/ns/a, */ns/b"}); err != nil {
		t.Fatal(err)
	}
	c.PinDir, c.PodsCgroup = "/sys/fs/bpf/fanout/x", "/sys/fs/cgroup/kubepods"
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	if c.DefaultTTL != 2*time.Minute || c.MaxTTL != time.Hour || len(c.Protected) != 2 || c.Protected[1] != "*/ns/b" {
		t.Fatalf("config = %+v", c)
	}
}

func TestPodUIDOf(t *testing.T) {
	for path, want := range map[string]string{
		"/sys/fs/cgroup/kubepods/besteffort/pod0f4a1b2c-1111-2222-3333-444455556666":                                              "0f4a1b2c-1111-2222-3333-444455556666",
		"/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4a1b2c_1111_2222_3333_444455556666.slice": "0f4a1b2c-1111-2222-3333-444455556666",
		"/sys/fs/cgroup/kubepods/besteffort/pod0f4a1b2c-1111-2222-3333-444455556666/abc":                                          "",
		"/sys/fs/cgroup/kubepods/besteffort": "",
	} {
		got, _ := podUIDOf(path)
		if got != want {
			t.Errorf("podUIDOf(%s) = %q, want %q", path, got, want)
		}
	}
}
