package endpointslice

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

func ptr[T any](v T) *T { return &v }

func ep(ready *bool, addrs ...string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: addrs, Conditions: discoveryv1.EndpointConditions{Ready: ready}}
}

func port(name string, n int32, proto *corev1.Protocol) discoveryv1.EndpointPort {
	p := discoveryv1.EndpointPort{Port: &n, Protocol: proto}
	if name != "" {
		p.Name = &name
	}
	return p
}

func slice(at discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{AddressType: at, Ports: ports, Endpoints: eps}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

var (
	tcp, udp, sctp = ptr(corev1.ProtocolTCP), ptr(corev1.ProtocolUDP), ptr(corev1.ProtocolSCTP)
	https          = []discoveryv1.EndpointPort{port("https", 6443, tcp)}
	httpsPorts     = []Port{{Name: "https", Number: 6443}}
)

func TestRead(t *testing.T) {
	for _, c := range []struct {
		name string
		es   *discoveryv1.EndpointSlice
		want Slice
	}{
		{"ipv4: ready, unset and not ready", slice(discoveryv1.AddressTypeIPv4, https,
			ep(ptr(true), "10.0.0.1"), ep(nil, "10.0.0.2"), ep(ptr(false), "10.0.0.3")),
			Slice{Addrs: addrs("10.0.0.1", "10.0.0.2"), Ports: httpsPorts}},
		{"ipv6, v4-mapped unmapped", slice(discoveryv1.AddressTypeIPv6, https, ep(nil, "fd00::1", "::ffff:10.0.0.9")),
			Slice{Addrs: addrs("fd00::1", "10.0.0.9"), Ports: httpsPorts}},
		{"every address of an endpoint, in order", slice(discoveryv1.AddressTypeIPv4, https,
			ep(nil, "10.0.0.2", "10.0.0.1"), ep(ptr(true), "10.0.0.2")),
			Slice{Addrs: addrs("10.0.0.2", "10.0.0.1", "10.0.0.2"), Ports: httpsPorts}},
		{"bad addresses skipped", slice(discoveryv1.AddressTypeIPv4, https,
			ep(nil, "not-an-ip", "", "10.0.0.256", "10.0.0.1/32", "10.0.0.1:443", "10.0.0.1")),
			Slice{Addrs: addrs("10.0.0.1"), Ports: httpsPorts}},
		{"no endpoint", slice(discoveryv1.AddressTypeIPv4, https), Slice{Ports: httpsPorts}},
		{"fqdn", slice(discoveryv1.AddressTypeFQDN, https, ep(nil, "api.example.com", "10.0.0.1")), Slice{}},
		{"fqdn without ports", slice(discoveryv1.AddressTypeFQDN, nil, ep(nil, "10.0.0.1")), Slice{}},
		{"unknown address type", slice("IPX", https, ep(nil, "10.0.0.1")), Slice{}},
		{"no port listed", slice(discoveryv1.AddressTypeIPv4, nil, ep(nil, "10.0.0.1")),
			Slice{Addrs: addrs("10.0.0.1"), NoPorts: true}},
		{"empty port list", slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{}, ep(nil, "10.0.0.1")),
			Slice{Addrs: addrs("10.0.0.1"), NoPorts: true}},
		{"protocols other than TCP dropped; unset is TCP", slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{
			port("dns", 53, udp), port("sctp", 9, sctp), port("other", 7, ptr(corev1.Protocol("QUIC"))),
			port("", 8080, nil), port("https", 443, tcp)}, ep(nil, "10.0.0.1")),
			Slice{Addrs: addrs("10.0.0.1"), Ports: []Port{{Number: 8080}, {Name: "https", Number: 443}}}},
		{"missing and invalid ports dropped, the slice still lists ports", slice(discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{{Name: ptr("unset")}, port("zero", 0, nil), port("negative", -1, tcp),
				port("high", 65536, tcp)}, ep(nil, "10.0.0.1")),
			Slice{Addrs: addrs("10.0.0.1")}},
		{"port range ends", slice(discoveryv1.AddressTypeIPv4,
			[]discoveryv1.EndpointPort{port("", 1, nil), port("", 65535, nil)}, ep(nil, "10.0.0.1")),
			Slice{Addrs: addrs("10.0.0.1"), Ports: []Port{{Number: 1}, {Number: 65535}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Read(c.es); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// A hostile slice (many endpoints, many addresses each, many ports) yields at most MaxAddresses addresses and MaxPorts
// ports, the first ones in slice order; dropped entries (not ready, unparsable, not TCP) do not use up the bound.
func TestReadBound(t *testing.T) {
	var eps []discoveryv1.Endpoint
	var want []netip.Addr
	for i := range 1000 {
		eps = append(eps, ep(ptr(false), "192.0.2.1"))
		var as []string
		for j := range 100 {
			a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)})
			as = append(as, "junk", a.String())
			if len(want) < MaxAddresses {
				want = append(want, a)
			}
		}
		eps = append(eps, ep(nil, as...))
	}
	var ports []discoveryv1.EndpointPort
	var wantPorts []Port
	for i := range 20000 {
		ports = append(ports, port("", int32(i+1), udp))
		n := int32(20000 + i)
		ports = append(ports, port(fmt.Sprint("p", n), n, nil))
		if len(wantPorts) < MaxPorts {
			wantPorts = append(wantPorts, Port{Name: fmt.Sprint("p", n), Number: uint16(n)})
		}
	}
	got := Read(slice(discoveryv1.AddressTypeIPv4, ports, eps...))
	if !slices.Equal(got.Addrs, want) {
		t.Errorf("addresses: got %d %v...\nwant %d %v...", len(got.Addrs), got.Addrs[:min(3, len(got.Addrs))], len(want), want[:3])
	}
	if !slices.Equal(got.Ports, wantPorts) || got.NoPorts {
		t.Errorf("ports: got %+v (no ports %v), want %+v", got.Ports, got.NoPorts, wantPorts)
	}

	// Exactly at the bound: nothing dropped.
	var as []string
	for i := range MaxAddresses {
		as = append(as, netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}).String())
	}
	if got := Read(slice(discoveryv1.AddressTypeIPv4, https, ep(nil, as...))); len(got.Addrs) != MaxAddresses {
		t.Errorf("%d addresses at the bound, want %d", len(got.Addrs), MaxAddresses)
	}
}

func TestPreferred(t *testing.T) {
	for _, c := range []struct {
		name   string
		ports  []Port
		want   uint16
		wantOK bool
	}{
		{"named among others", []Port{{Name: "metrics", Number: 8080}, {Name: "https", Number: 443}, {Number: 6443}}, 443, true},
		{"first of two named (duplicate names are invalid)", []Port{{Name: "https", Number: 443}, {Name: "https", Number: 6443}}, 443, true},
		{"none named: the first", []Port{{Number: 6443}, {Name: "other", Number: 8443}}, 6443, true},
		{"name is case-sensitive", []Port{{Name: "other", Number: 8443}, {Name: "HTTPS", Number: 443}}, 8443, true},
		{"no port", nil, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Slice{Ports: c.ports}.Preferred("https")
			if got != c.want || ok != c.wantOK {
				t.Errorf("got %d %v, want %d %v", got, ok, c.want, c.wantOK)
			}
		})
	}

	// Through Read: a UDP port named https is not a candidate.
	es := slice(discoveryv1.AddressTypeIPv4, []discoveryv1.EndpointPort{port("https", 443, udp), port("", 6443, nil)}, ep(nil, "10.0.0.1"))
	if got, ok := Read(es).Preferred("https"); got != 6443 || !ok {
		t.Errorf("UDP https: got %d %v, want 6443", got, ok)
	}
}

func TestNumbers(t *testing.T) {
	if got := (Slice{}).Numbers(); got != nil {
		t.Errorf("no ports: %v", got)
	}
	if got := (Slice{Ports: []Port{{Name: "https", Number: 443}, {Number: 6443}}}).Numbers(); !slices.Equal(got, []uint16{443, 6443}) {
		t.Errorf("got %v", got)
	}
}
