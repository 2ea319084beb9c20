package protect

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestMatch(t *testing.T) {
	s := MustCompile([]string{"DaemonSet/kube-system/*", "*/*/coredns", "Deployment/prod/web", "SystemdUnit//*", " ", "*/kube-system/kube-dns*"})
	cases := map[string]bool{
		"DaemonSet/kube-system/kube-proxy":   true,
		"daemonset/kube-system/kube-proxy":   true, // Kind is case-insensitive
		"DaemonSet/Kube-System/kube-proxy":   false,
		"Deployment/kube-system/coredns":     true,
		"Deployment/kube-system/coredns-abc": false,
		"Deployment/kube-system/kube-dns-1":  true,
		"Deployment/prod/web":                true,
		"deployment/prod/web":                true,
		"Deployment/prod/web2":               false,
		"Deployment/prod/we":                 false,
		"DaemonSet/monitoring/agent":         false,
		"SystemdUnit//kubelet.service":       true,
		"DaemonSet/kube-system/a/b":          false, // * never crosses /
		"DaemonSet/kube-system":              false,
		"":                                   false,
		"Unknown//cgroup-12":                 false,
	}
	for w, want := range cases {
		if got := s.Match(w); got != want {
			t.Errorf("Match(%q) = %v, want %v", w, got, want)
		}
	}
	if p, ok := s.Which("Deployment/x/coredns"); !ok || p != "*/*/coredns" {
		t.Errorf("Which = %q %v", p, ok)
	}
	if s.Len() != 5 {
		t.Errorf("Len = %d, want 5 (blank skipped)", s.Len())
	}
}

func TestZeroAndNilSetProtectNothing(t *testing.T) {
	var s *Set
	if s.Match("DaemonSet/kube-system/kube-proxy") || s.Len() != 0 || s.Patterns() != nil {
		t.Fatal("nil set protects something")
	}
	if (&Set{}).Match("DaemonSet/kube-system/kube-proxy") {
		t.Fatal("zero set protects something")
	}
}

func TestCompileRejects(t *testing.T) {
	for _, p := range []string{"*", "kube-system/*", "a/b/c/d", "DaemonSet/[/x", `a/b/c\`, "a/b/[]", strings.Repeat("a", MaxPatternLen) + "/b/c"} {
		if _, err := Compile([]string{"*/*/ok", p}); !errors.Is(err, ErrBadPattern) {
			t.Errorf("Compile(%q) err = %v, want ErrBadPattern", p, err)
		} else if !strings.Contains(err.Error(), strings.TrimSpace(p)[:min(len(p), 20)]) {
			t.Errorf("error %q does not name the pattern", err)
		}
	}
	many := make([]string, MaxPatterns+1)
	for i := range many {
		many[i] = "a/b/c"
	}
	if _, err := Compile(many); !errors.Is(err, ErrBadPattern) {
		t.Errorf("too many patterns accepted: %v", err)
	}
}

func TestDefaultsCompileAndCoverCriticals(t *testing.T) {
	s := MustCompile(Defaults)
	for _, w := range []string{"Deployment/kube-system/coredns", "DaemonSet/kube-system/kube-proxy", "DaemonSet/kube-system/cilium",
		"DaemonSet/calico-system/calico-node", "Deployment/fanout/fanout-aggregator", "DaemonSet/fanout/fanout-agent",
		"SystemdUnit//kubelet.service", "Pod/kube-system/kube-apiserver-node1"} {
		if !s.Match(w) {
			t.Errorf("default list does not protect %s", w)
		}
	}
	for _, w := range []string{"DaemonSet/monitoring/telemetry-agent", "Deployment/default/web"} {
		if s.Match(w) {
			t.Errorf("default list protects %s", w)
		}
	}
}

// FuzzMatch: never panics, and agrees with path.Match applied segment by segment (Kind lower-cased).
func FuzzMatch(f *testing.F) {
	f.Add("DaemonSet/kube-system/*", "DaemonSet/kube-system/kube-proxy")
	f.Add("*/*/coredns", "Deployment/kube-system/coredns")
	f.Add("SystemdUnit//*", "SystemdUnit//kubelet.service")
	f.Add("a/b/[c-", "a/b/c")
	f.Add(`a/\*/c`, "a/*/c")
	f.Add("Deploy?ent/x/y", "deployment/x/y")
	f.Fuzz(func(t *testing.T, pat, w string) {
		s, err := Compile([]string{pat})
		if err != nil {
			if !errors.Is(err, ErrBadPattern) {
				t.Fatalf("error not ErrBadPattern: %v", err)
			}
			return
		}
		got := s.Match(w)
		ps := strings.Split(strings.TrimSpace(pat), "/")
		ws := strings.Split(w, "/")
		want := false
		if strings.TrimSpace(pat) != "" && len(ws) == 3 && len(ps) == 3 {
			k, _ := path.Match(strings.ToLower(ps[0]), strings.ToLower(ws[0]))
			n, _ := path.Match(ps[1], ws[1])
			m, _ := path.Match(ps[2], ws[2])
			want = k && n && m
		}
		if got != want {
			t.Fatalf("Match(%q, %q) = %v, want %v", pat, w, got, want)
		}
	})
}
