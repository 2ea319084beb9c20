package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fanoutdev/fanout/aggregator/apiserverstats"
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

// TestInClusterDiscoveryRealAPIServer lists the replicas behind Service default/kubernetes on a real kube-apiserver as
// a user holding only the chart's grant for it (list endpointslices in default): the harness runs without the
// endpoint reconciler, so the test writes the slice the reconciler would, with a ready and a not-ready address.
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
	// EndpointSlices refuse loopback addresses, and tests never send traffic beyond loopback: the slice holds
	// documentation addresses (RFC 5737), which discovery lists with the chart's grant but nothing dials. Scraping a
	// discovered set is covered over loopback by apiserverstats' TestScraperSetURLs.
	port, https, ready, notReady := int32(6443), "https", true, false
	if _, err := admin.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &https, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"198.51.100.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"198.51.100.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &notReady}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	d, err := apiserverstats.NewDiscovery(apiserverstats.DiscoveryConfig{
		Client:   kubernetes.NewForConfigOrDie(cp.RESTConfig(user)),
		Fallback: "https://fallback.invalid:443/metrics",
		Set:      func(urls []string) error { got = urls; return nil },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	d.Refresh(ctx)
	if want := []string{"https://198.51.100.1:6443/metrics"}; !slices.Equal(got, want) {
		t.Fatalf("discovered %v, want %v (the ready replica only, listed with the aggregator's grants)", got, want)
	}
}
