package apiserverstats

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func ptr[T any](v T) *T { return &v }

func apiSlice(ns, name, service string, at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: at, Ports: ports, Endpoints: eps,
	}
}

func ep(ready *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

var httpsPort = []discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr[int32](6443), Protocol: ptr(corev1.ProtocolTCP)}}

// SliceURLs' own part: the URL form and the port policy (the reading itself is tested in internal/endpointslice).
func TestSliceURLs(t *testing.T) {
	for _, c := range []struct {
		name string
		es   *discoveryv1.EndpointSlice
		want []string
	}{
		{"ipv4 ready, unset and not ready", apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, httpsPort,
			ep(ptr(true), "10.0.0.1"), ep(nil, "10.0.0.2"), ep(ptr(false), "10.0.0.3")),
			[]string{"https://10.0.0.1:6443/metrics", "https://10.0.0.2:6443/metrics"}},
		{"ipv6 bracketed, v4-mapped unmapped", apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv6, httpsPort,
			ep(ptr(true), "fd00::1", "::ffff:10.0.0.9"), ep(nil, "not-an-ip")),
			[]string{"https://[fd00::1]:6443/metrics", "https://10.0.0.9:6443/metrics"}},
		{"the port named https among others; UDP skipped", apiSlice("default", "k", "kubernetes", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr("dns"), Port: ptr[int32](53), Protocol: ptr(corev1.ProtocolUDP)},
				{Name: ptr("other"), Port: ptr[int32](8080)}, {Name: ptr("https"), Port: ptr[int32](443)}},
			ep(nil, "10.0.0.1")),
			[]string{"https://10.0.0.1:443/metrics"}},
		{"unnamed TCP port", apiSlice("default", "k", "kubernetes", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Port: ptr[int32](6443)}}, ep(nil, "10.0.0.1")),
			[]string{"https://10.0.0.1:6443/metrics"}},
		{"no port", apiSlice("default", "k", "kubernetes", discoveryv1.AddressTypeIPv4, nil, ep(nil, "10.0.0.1")), nil},
		{"no TCP port", apiSlice("default", "k", "kubernetes", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr("https"), Port: ptr[int32](443), Protocol: ptr(corev1.ProtocolUDP)}},
			ep(nil, "10.0.0.1")), nil},
		{"fqdn", apiSlice("default", "k", "kubernetes", discoveryv1.AddressTypeFQDN, httpsPort, ep(nil, "api.example.com")), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := SliceURLs(c.es); !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestServiceURL(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "https://10.96.0.1:443/metrics"},
		{map[string]string{"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"}, "https://[fd00:10:96::1]:443/metrics"},
		{map[string]string{}, ""},
	} {
		if got := ServiceURL(env(c.env)); got != c.want {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
}

// Discovery over a fake clientset: one LIST per refresh, scoped to default and the label; replicas come and go; the
// last known set stays while listing fails; an empty list falls back to the Service address; the set is bounded.
func TestDiscoveryRefresh(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(
		apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, httpsPort, ep(ptr(true), "10.0.0.1"), ep(ptr(true), "10.0.0.2")),
		apiSlice("default", "other-abcde", "other", discoveryv1.AddressTypeIPv4, httpsPort, ep(nil, "10.0.9.9")),
		apiSlice("team-a", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, httpsPort, ep(nil, "10.0.8.8")),
	)
	var sets [][]string
	sc, err := NewScraper(ScrapeConfig{InsecureSkipVerify: true, MaxReplicas: 16}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDiscovery(DiscoveryConfig{Client: cs, MaxReplicas: 3, Fallback: "https://10.96.0.1:443/metrics",
		Set: func(u []string) error { sets = append(sets, u); return sc.SetURLs(u) }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	expect := func(step string, want ...string) {
		t.Helper()
		cs.ClearActions()
		got := d.Refresh(ctx)
		if !slices.Equal(got, want) || !slices.Equal(sc.URLs(), want) {
			t.Fatalf("%s: discovery %q, scraper %q, want %q", step, got, sc.URLs(), want)
		}
		acts := cs.Actions()
		if len(acts) != 1 || acts[0].GetVerb() != "list" || acts[0].GetNamespace() != "default" {
			t.Fatalf("%s: want one LIST in default, got %v", step, acts)
		}
		la := acts[0].(k8stesting.ListActionImpl)
		if sel := la.GetListRestrictions().Labels.String(); sel != "kubernetes.io/service-name=kubernetes" {
			t.Fatalf("%s: label selector %q", step, sel)
		}
	}
	expect("start", "https://10.0.0.1:6443/metrics", "https://10.0.0.2:6443/metrics")
	n := len(sets)
	expect("unchanged", "https://10.0.0.1:6443/metrics", "https://10.0.0.2:6443/metrics")
	if len(sets) != n {
		t.Fatalf("an unchanged set was set again: %q", sets)
	}

	// A third replica joins (IPv6, second slice), the second becomes not ready.
	esi := cs.DiscoveryV1().EndpointSlices("default")
	if _, err := esi.Update(ctx, apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, httpsPort,
		ep(ptr(true), "10.0.0.1"), ep(ptr(false), "10.0.0.2")), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := esi.Create(ctx, apiSlice("default", "kubernetes-v6", "kubernetes", discoveryv1.AddressTypeIPv6, httpsPort,
		ep(nil, "fd00::3")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("changed", "https://10.0.0.1:6443/metrics", "https://[fd00::3]:6443/metrics")

	// The API server cannot be listed: the last known set stays.
	cs.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	expect("unreachable", "https://10.0.0.1:6443/metrics", "https://[fd00::3]:6443/metrics")
	cs.ReactionChain = cs.ReactionChain[1:]

	// Bounded: 5 ready replicas, the first 3 in address order kept.
	if _, err := esi.Update(ctx, apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, httpsPort,
		ep(nil, "10.0.0.5", "10.0.0.4", "10.0.0.3", "10.0.0.2", "10.0.0.1")), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("bounded", "https://10.0.0.1:6443/metrics", "https://10.0.0.2:6443/metrics", "https://10.0.0.3:6443/metrics")

	// No ready endpoint at all: the Service address.
	for _, name := range []string{"kubernetes", "kubernetes-v6"} {
		if err := esi.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	expect("empty", "https://10.96.0.1:443/metrics")
}

// Listing fails from the start: the Service address is scraped until the first successful list.
func TestDiscoveryFallbackAtStart(t *testing.T) {
	cs := fake.NewClientset()
	cs.PrependReactor("list", "endpointslices", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("forbidden")
	})
	var got []string
	d, err := NewDiscovery(DiscoveryConfig{Client: cs, Fallback: "https://10.96.0.1:443/metrics",
		Set: func(u []string) error { got = u; return nil }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.Refresh(context.Background())
	if !slices.Equal(got, []string{"https://10.96.0.1:443/metrics"}) {
		t.Fatalf("set %q", got)
	}
	cs.ReactionChain = cs.ReactionChain[1:]
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Create(context.Background(), apiSlice("default", "kubernetes", "kubernetes",
		discoveryv1.AddressTypeIPv4, httpsPort, ep(nil, "10.0.0.1")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d.Refresh(context.Background())
	if !slices.Equal(got, []string{"https://10.0.0.1:6443/metrics"}) {
		t.Fatalf("set %q", got)
	}
}

// Run re-lists on its period.
func TestDiscoveryRunRelists(t *testing.T) {
	cs := fake.NewClientset(apiSlice("default", "kubernetes", "kubernetes", discoveryv1.AddressTypeIPv4, httpsPort, ep(nil, "10.0.0.1")))
	var mu sync.Mutex
	var got []string
	d, err := NewDiscovery(DiscoveryConfig{Client: cs, Every: 20 * time.Millisecond,
		Set: func(u []string) error { mu.Lock(); got = u; mu.Unlock(); return nil }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := cs.DiscoveryV1().EndpointSlices("default").Update(ctx, apiSlice("default", "kubernetes", "kubernetes",
		discoveryv1.AddressTypeIPv4, httpsPort, ep(nil, "10.0.0.7")), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		ok := slices.Equal(got, []string{"https://10.0.0.7:6443/metrics"})
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("set %q after the slice changed", got)
		}
	}
}

// The scraper follows a changing URL set: a kept replica keeps its previous page (its next reading has deltas), a new
// one starts, a removed one stops being scraped and its status disappears; an invalid set is refused whole.
func TestScraperSetURLs(t *testing.T) {
	page := readPage(t, "load-a")
	var mu sync.Mutex
	hits := map[string]int{}
	serve := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hits[name]++
			mu.Unlock()
			w.Header().Set("Content-Type", textType)
			_, _ = w.Write(page)
		}))
	}
	a, b, c := serve("a"), serve("b"), serve("c")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	sc, err := NewScraper(ScrapeConfig{URLs: []string{a.URL, b.URL}, Interval: 50 * time.Millisecond, Timeout: 5 * time.Second, MaxReplicas: 3}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var readings []Reading
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc.Run(ctx, func(r Reading) { mu.Lock(); readings = append(readings, r); mu.Unlock() })
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	count := func(replica string, deltas bool) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range readings {
			if r.Replica == replica && (!deltas || r.Deltas) {
				n++
			}
		}
		return n
	}
	waitFor("a and b read twice", func() bool { return count(host(a), true) > 0 && count(host(b), true) > 0 })

	if err := sc.SetURLs([]string{a.URL, "ftp://x"}); err == nil {
		t.Fatal("an invalid URL was accepted")
	}
	if err := sc.SetURLs([]string{a.URL, b.URL, c.URL, "http://10.0.0.1:1"}); err == nil {
		t.Fatal("a set over MaxReplicas was accepted")
	}
	if got := sc.URLs(); len(got) != 2 {
		t.Fatalf("a refused set changed the URLs: %q", got)
	}

	// b leaves, c joins. a's first reading after the change has deltas: its loop (and previous page) was kept.
	mu.Lock()
	mark := len(readings)
	mu.Unlock()
	if err := sc.SetURLs([]string{c.URL, a.URL}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range sc.Status() {
		names = append(names, st.Replica)
	}
	if !slices.Equal(names, []string{host(c), host(a)}) {
		t.Fatalf("status replicas %q, want c then a", names)
	}
	if st := sc.Status()[1]; st.Scrapes < 2 {
		t.Fatalf("a's status was reset: %+v", st)
	}
	waitFor("c read twice", func() bool { return count(host(c), true) > 0 })
	waitFor("a read after the change", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(readings[mark:], func(r Reading) bool { return r.Replica == host(a) })
	})
	mu.Lock()
	i := slices.IndexFunc(readings[mark:], func(r Reading) bool { return r.Replica == host(a) })
	if r := readings[mark+i]; !r.Deltas {
		t.Errorf("a's first reading after the change has no deltas (its previous page was lost): %+v", r)
	}
	mu.Unlock()
	// b may finish a scrape that was under way; after that, nothing.
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	bHits, bReadings := hits["b"], count0(readings, host(b))
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if hits["b"] != bHits || count0(readings, host(b)) != bReadings {
		t.Errorf("b scraped after it left the set (%d -> %d requests)", bHits, hits["b"])
	}
}

func count0(rs []Reading, replica string) int {
	n := 0
	for _, r := range rs {
		if r.Replica == replica {
			n++
		}
	}
	return n
}
