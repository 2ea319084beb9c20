package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fanoutdev/fanout/e2e/harness"
)

func TestInClusterFlagValidation(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // "" = accepted
	}{
		{[]string{"--headroom.apiserver-url=in-cluster"}, ""},
		{[]string{"--headroom.apiserver-url=in-cluster,https://10.0.0.1:6443"}, "give it alone"},
		{[]string{"--headroom.apiserver-url=in-cluster", "--headroom.prometheus-url=http://prom:9090"}, "exclude each other"},
	} {
		_, err := parseFlags(append([]string{"--auth.agent-token-file=/x", "--insecure"}, c.args...), io.Discard)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the aggregator's logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestInClusterDiscoveryRealAPIServer runs the aggregator with --headroom.apiserver-url=in-cluster against a real
// kube-apiserver, as a user holding only the chart's grants for it (list endpointslices in default, get /metrics):
// it finds the replica in the EndpointSlices of default/kubernetes (the harness runs without the endpoint reconciler,
// so the test writes the slice the reconciler would, plus a not-ready address) and scrapes it with the kubeconfig's
// credentials.
func TestInClusterDiscoveryRealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real kube-apiserver")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const user = "fanout-aggregator"
	cp, err := harness.Start(ctx, harness.Config{Users: []string{user}, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	defer cp.Close()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))
	rbac := admin.RbacV1()
	subj := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "headroom"},
		Rules: []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "headroom"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "headroom"}, Subjects: subj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.Roles("default").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "discovery"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rbac.RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "discovery"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "discovery"}, Subjects: subj}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// EndpointSlices refuse loopback addresses and the harness listens on loopback only: the replica's address is a
	// forwarder on this machine's non-loopback address (IPv6 preferred: the URL must bracket it), and the kubeconfig
	// verifies the API server's certificate under the name it carries (localhost) instead of that address.
	fwd := forwarder(t, fmt.Sprintf("%s:%d", cp.Host, cp.Port))
	replica := fwd.String()
	port, https, ready, notReady := int32(fwd.Port()), "https", true, false
	if _, err := admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: map[bool]discoveryv1.AddressType{true: discoveryv1.AddressTypeIPv4, false: discoveryv1.AddressTypeIPv6}[fwd.Addr().Is4()],
		Ports:       []discoveryv1.EndpointPort{{Name: &https, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{fwd.Addr().String()}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{map[bool]string{true: "198.51.100.1", false: "2001:db8::1"}[fwd.Addr().Is4()]}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc, err := cp.WriteKubeconfig(user)
	if err != nil {
		t.Fatal(err)
	}
	kcfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range kcfg.Clusters {
		c.TLSServerName = "localhost"
	}
	if err := clientcmd.WriteToFile(*kcfg, kc); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	tok := filepath.Join(dir, "tokens")
	_ = os.WriteFile(tok, []byte("node-token-0123456789abcdef node-1\n"), 0o600)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	maddr := l.Addr().String()
	l.Close()
	actx, astop := context.WithCancel(ctx)
	logs := &syncBuffer{}
	done := make(chan int)
	go func() {
		done <- run(actx, []string{"--auth.agent-token-file", tok, "--insecure", "--listen", "127.0.0.1:0", "--metrics.listen", maddr,
			"--headroom.apiserver-url=in-cluster", "--kubeconfig", kc, "--headroom.interval", "1s"}, logs)
	}()
	want := fmt.Sprintf(`fanout_headroom_scrape_success{replica="%s"} 1`, replica)
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !strings.Contains(body, want); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	astop()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	scrapes := grep(body, "fanout_headroom_scrape_success")
	if !strings.Contains(body, want) || strings.Count(scrapes, "replica=") != 1 {
		t.Fatalf("want exactly the ready replica scraped:\n%s\nlog: %s", scrapes, logs.String())
	}
	t.Logf("%s", scrapes)
	if strings.Contains(logs.String(), "mixed behind the Service") {
		t.Errorf("fell back to the Service address although a replica was discovered:\n%s", logs.String())
	}
}

// forwarder relays TCP connections from this machine's first non-loopback, non-link-local address (IPv6 first) to
// target, until the test ends.
func forwarder(t *testing.T, target string) netip.AddrPort {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var pick netip.Addr
	for _, a := range addrs {
		p, err := netip.ParsePrefix(a.String())
		if err != nil || !p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() {
			continue
		}
		if !pick.IsValid() || pick.Is4() && p.Addr().Is6() {
			pick = p.Addr()
		}
	}
	if !pick.IsValid() {
		t.Skip("no non-loopback address to put in an EndpointSlice")
	}
	l, err := net.Listen("tcp", netip.AddrPortFrom(pick, 0).String())
	if err != nil {
		t.Skipf("listen on %s: %v", pick, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return netip.MustParseAddrPort(l.Addr().String())
}
