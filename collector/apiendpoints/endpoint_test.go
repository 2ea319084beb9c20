package apiendpoints

import (
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/fanoutdev/fanout/collector/probe"
)

// The agent converts with probe.Endpoint(e): this stops compiling if the two types drift apart.
var _ = probe.Endpoint(Endpoint{})

func ep(s string, cip bool) Endpoint {
	ap := netip.MustParseAddrPort(s)
	return Endpoint{Addr: ap.Addr(), Port: ap.Port(), ClusterIP: cip}
}

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	got, err := FromEnv(env(map[string]string{EnvServiceHost: "10.96.0.1", EnvServicePort: "443"}))
	if err != nil || !slices.Equal(got, []Endpoint{ep("10.96.0.1:443", true)}) {
		t.Fatalf("v4: %v %v", got, err)
	}
	got, err = FromEnv(env(map[string]string{EnvServiceHost: "fd00:10:96::1", EnvServicePort: "6443"}))
	if err != nil || !slices.Equal(got, []Endpoint{ep("[fd00:10:96::1]:6443", true)}) {
		t.Fatalf("v6: %v %v", got, err)
	}
	got, err = FromEnv(env(map[string]string{EnvServiceHost: "10.96.0.1"}))
	if err != nil || !slices.Equal(got, []Endpoint{ep("10.96.0.1:443", true)}) {
		t.Fatalf("default port: %v %v", got, err)
	}
	if got, err := FromEnv(env(nil)); err != nil || got != nil {
		t.Fatalf("unset: %v %v", got, err)
	}
	for _, bad := range []map[string]string{
		{EnvServiceHost: "kubernetes.default"},
		{EnvServiceHost: "10.96.0.1", EnvServicePort: "https"},
		{EnvServiceHost: "10.96.0.1", EnvServicePort: "70000"},
		{EnvServiceHost: "10.96.0.1", EnvServicePort: "0"},
	} {
		if _, err := FromEnv(env(bad)); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestNormalize(t *testing.T) {
	in := []Endpoint{
		ep("[::ffff:10.0.0.2]:443", false), ep("10.0.0.2:443", true), ep("[2001:db8::1]:6443", false),
		ep("10.0.0.1:6443", false), ep("10.0.0.1:443", false), {},
	}
	want := []Endpoint{ep("10.0.0.1:443", false), ep("10.0.0.1:6443", false), ep("10.0.0.2:443", true),
		ep("[2001:db8::1]:6443", false)}
	if got := normalize(in); !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestExtract(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{
		ClusterIP: "10.96.0.1", ClusterIPs: []string{"10.96.0.1", "fd00::1"},
		Ports: []corev1.ServicePort{{Port: 443}, {Port: 53, Protocol: corev1.ProtocolUDP}},
	}}
	if got, want := serviceEndpoints(svc), []Endpoint{ep("10.96.0.1:443", true), ep("[fd00::1]:443", true)}; !slices.Equal(got, want) {
		t.Fatalf("service: got %v want %v", got, want)
	}
	if got := serviceEndpoints(&corev1.Service{Spec: corev1.ServiceSpec{ClusterIP: "None"}}); got != nil {
		t.Fatalf("headless: %v", got)
	}
}

// sliceEndpoints' own part: every ready address x every TCP port, port 0 when the slice lists none (the reading itself
// is tested in internal/endpointslice).
func TestSliceEndpoints(t *testing.T) {
	yes, no, udp := true, false, corev1.ProtocolUDP
	port := func(n int32, proto *corev1.Protocol) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Port: &n, Protocol: proto}
	}
	eps := []discoveryv1.Endpoint{
		{Addresses: []string{"192.0.2.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &yes}},
		{Addresses: []string{"192.0.2.2", "::ffff:192.0.2.4"}},
		{Addresses: []string{"192.0.2.3"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
	}
	for _, c := range []struct {
		name  string
		at    discoveryv1.AddressType
		ports []discoveryv1.EndpointPort
		want  []Endpoint
	}{
		{"one TCP port, UDP skipped", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port(6443, nil), port(6443, &udp)},
			[]Endpoint{ep("192.0.2.1:6443", false), ep("192.0.2.2:6443", false), ep("192.0.2.4:6443", false)}},
		{"every TCP port", discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port(443, nil), port(6443, nil)},
			[]Endpoint{ep("192.0.2.1:443", false), ep("192.0.2.1:6443", false), ep("192.0.2.2:443", false),
				ep("192.0.2.2:6443", false), ep("192.0.2.4:443", false), ep("192.0.2.4:6443", false)}},
		{"no port listed: any port", discoveryv1.AddressTypeIPv4, nil,
			[]Endpoint{ep("192.0.2.1:0", false), ep("192.0.2.2:0", false), ep("192.0.2.4:0", false)}},
		{"only UDP and invalid ports: nothing", discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{port(53, &udp), port(0, nil), {}}, nil},
		{"fqdn", discoveryv1.AddressTypeFQDN, []discoveryv1.EndpointPort{port(6443, nil)}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			es := &discoveryv1.EndpointSlice{AddressType: c.at, Ports: c.ports, Endpoints: eps}
			if got := sliceEndpoints(es); !slices.Equal(got, c.want) {
				t.Errorf("got %v\nwant %v", got, c.want)
			}
		})
	}
}
