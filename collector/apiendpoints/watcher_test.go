package apiendpoints

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/e2e/harness"
)

// cp is the one control plane of this test package (nil with -short).
var cp *harness.ControlPlane

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	var err error
	cp, err = harness.Start(ctx, harness.Config{})
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := cp.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close control plane:", err)
	}
	os.Exit(code)
}

// collector records every callback.
type collector struct {
	mu    sync.Mutex
	calls [][]Endpoint
	ch    chan struct{}
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) onChange(eps []Endpoint) {
	c.mu.Lock()
	c.calls = append(c.calls, eps)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *collector) last() []Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.calls) == 0 {
		return nil
	}
	return c.calls[len(c.calls)-1]
}

func (c *collector) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// waitFor waits until the last delivered set equals want.
func (c *collector) waitFor(t *testing.T, what string, want []Endpoint) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		if slices.Equal(c.last(), want) {
			return
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("%s: last set %v, want %v", what, c.last(), want)
		}
	}
}

func TestStaticSeedWithoutAPIServer(t *testing.T) {
	c := newCollector()
	seed := []Endpoint{ep("10.96.0.1:443", true), ep("198.51.100.7:6443", false), ep("10.96.0.1:443", true)}
	w, err := New(Config{Static: seed, OnChange: c.onChange})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	c.waitFor(t, "seed", []Endpoint{ep("10.96.0.1:443", true), ep("198.51.100.7:6443", false)})
	if w.HasSynced() {
		t.Error("HasSynced without a client")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if c.n() != 1 {
		t.Fatalf("want exactly one delivery, got %d", c.n())
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without OnChange: want an error")
	}
}

// requestCounter counts requests by "VERB path?watch" so tests can assert how much the watcher asks of the API.
type requestCounter struct {
	mu   sync.Mutex
	reqs []string
}

func (rc *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		rc.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (rc *requestCounter) snapshot() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestWatchRealAPIServer(t *testing.T) {
	if cp == nil {
		t.Skip("needs the real kube-apiserver (not with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(cp.RESTConfig(harness.AdminUser))

	// The Service: kube-apiserver's bootstrap controller may already have created it; create it otherwise.
	svc, err := admin.CoreV1().Services(ServiceNamespace).Get(ctx, ServiceName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		svc, err = admin.CoreV1().Services(ServiceNamespace).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace},
			Spec:       corev1.ServiceSpec{ClusterIP: "10.96.0.1", Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("service: %v", err)
	}
	t.Logf("service %s/%s clusterIPs %v ports %v", svc.Namespace, svc.Name, svc.Spec.ClusterIPs, svc.Spec.Ports)
	if svc.Spec.ClusterIP != "10.96.0.1" || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 {
		t.Fatalf("unexpected service spec: %+v", svc.Spec)
	}
	yes, no, port := true, false, int32(6443)
	v4 := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: ServiceNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: ServiceName}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"192.0.2.10"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"192.0.2.11"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
			{Addresses: []string{"192.0.2.12"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
		},
	}
	slicesAPI := admin.DiscoveryV1().EndpointSlices(ServiceNamespace)
	if v4, err = slicesAPI.Create(ctx, v4, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create slice: %v", err)
	}
	// A slice of another Service in the same namespace must be ignored (and not even be sent by the server).
	other := v4.DeepCopy()
	other.ObjectMeta = metav1.ObjectMeta{Name: "other", Namespace: ServiceNamespace,
		Labels: map[string]string{discoveryv1.LabelServiceName: "other"}}
	other.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"203.0.113.9"}}}
	if _, err := slicesAPI.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create other slice: %v", err)
	}

	rc := &requestCounter{}
	rcfg := cp.RESTConfig(harness.AdminUser)
	rcfg.WrapTransport = rc.wrap
	client := kubernetes.NewForConfigOrDie(rcfg)
	static, err := FromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{EnvServiceHost: "10.96.0.1", EnvServicePort: "443"}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	static = append(static, ep("198.51.100.7:6443", false)) // as from --api-endpoints
	c := newCollector()
	w, err := New(Config{Client: client, Static: static, StartJitter: 300 * time.Millisecond, OnChange: c.onChange,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- w.Run(runCtx) }()

	c.waitFor(t, "seed", []Endpoint{ep("10.96.0.1:443", true), ep("198.51.100.7:6443", false)})
	c.waitFor(t, "discovered", []Endpoint{ep("10.96.0.1:443", true), ep("192.0.2.10:6443", false),
		ep("192.0.2.11:6443", false), ep("198.51.100.7:6443", false)})
	t.Logf("discovered after %v (jitter up to 300ms)", time.Since(start).Round(time.Millisecond))
	for deadline := time.Now().Add(5 * time.Second); !w.HasSynced(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("informers not synced 5 s after discovery")
		}
	}

	// Update: drop one v4 endpoint, add an IPv6 slice (a slice holds one address family).
	v4.Endpoints = v4.Endpoints[:1]
	if _, err := slicesAPI.Update(ctx, v4, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update slice: %v", err)
	}
	v6 := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes-v6", Namespace: ServiceNamespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: ServiceName}},
		AddressType: discoveryv1.AddressTypeIPv6,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("https"), Port: &port}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"2001:db8::10"}}},
	}
	if _, err := slicesAPI.Create(ctx, v6, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create v6 slice: %v", err)
	}
	c.waitFor(t, "after update", []Endpoint{ep("10.96.0.1:443", true), ep("192.0.2.10:6443", false),
		ep("198.51.100.7:6443", false), ep("[2001:db8::10]:6443", false)})

	// Deleting the v6 slice removes its address.
	if err := slicesAPI.Delete(ctx, v6.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete v6 slice: %v", err)
	}
	c.waitFor(t, "after delete", []Endpoint{ep("10.96.0.1:443", true), ep("192.0.2.10:6443", false),
		ep("198.51.100.7:6443", false)})

	// Quiet period: no polling, no re-lists.
	before := len(rc.snapshot())
	time.Sleep(2 * time.Second)
	reqs := rc.snapshot()
	if len(reqs) != before {
		t.Errorf("requests during a quiet 2 s: %v", reqs[before:])
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	// O(1): at most a LIST and a WATCH per resource (one streaming WATCH when client-go uses watch-list), each
	// scoped to namespace default and its selector.
	perResource := map[string]int{}
	for _, r := range reqs {
		t.Logf("request: %s", r)
		switch {
		case strings.Contains(r, "/api/v1/namespaces/default/services?") &&
			strings.Contains(r, "fieldSelector=metadata.name%3Dkubernetes"):
			perResource["services"]++
		case strings.Contains(r, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?") &&
			strings.Contains(r, "labelSelector=kubernetes.io%2Fservice-name%3Dkubernetes"):
			perResource["endpointslices"]++
		default:
			t.Errorf("unexpected request %s", r)
		}
	}
	for _, res := range []string{"services", "endpointslices"} {
		if n := perResource[res]; n < 1 || n > 2 {
			t.Errorf("%s: %d requests, want 1-2 (list+watch)", res, n)
		}
	}
	t.Logf("requests in total: %d over %v (%v), deliveries: %d", len(reqs), time.Since(start).Round(time.Millisecond),
		perResource, c.n())
	// seed, discovered, v4 update and v6 create (one delivery when coalesced), v6 delete.
	if n := c.n(); n < 4 || n > 5 {
		t.Errorf("deliveries: %d, want 4-5", n)
	}
}

func ptr[T any](v T) *T { return &v }
