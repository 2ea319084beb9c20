package enforce

import (
	"flag"
	"testing"
	"time"
)

func TestRampSchedule(t *testing.T) {
	r := Ramp{Duration: 400 * time.Millisecond, Steps: 4}
	got := r.schedule(8)
	want := []time.Duration{0, 0, 100, 100, 200, 200, 300, 300}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("schedule(8) = %v, want %v ms", got, want)
		}
	}
	// Fewer pods than steps: one pod per step, spread over the ramp.
	if got := r.schedule(2); got[0] != 0 || got[1] != 200*time.Millisecond {
		t.Fatalf("schedule(2) = %v", got)
	}
	if got := (Ramp{}).schedule(3); got[0] != 0 || got[2] != 0 {
		t.Fatalf("zero ramp = %v, want all at once", got)
	}
}

func TestProtectedPatterns(t *testing.T) {
	p := protector{patterns: DefaultProtected}
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
		if got := p.workloadProtected(w); got != want {
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
