package apiendpoints

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/fanoutdev/fanout/internal/endpointslice"
)

// serviceEndpoints returns the ClusterIPs x TCP ports of a Service (headless "None" and unparsable IPs skipped).
func serviceEndpoints(svc *corev1.Service) []Endpoint {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	var ports []uint16
	for _, p := range svc.Spec.Ports {
		if (p.Protocol == "" || p.Protocol == corev1.ProtocolTCP) && p.Port > 0 && p.Port <= 65535 {
			ports = append(ports, uint16(p.Port))
		}
	}
	if len(ports) == 0 {
		ports = []uint16{0}
	}
	var out []Endpoint
	for _, s := range ips {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		for _, p := range ports {
			out = append(out, Endpoint{Addr: a.Unmap(), Port: p, ClusterIP: true})
		}
	}
	return out
}

// sliceEndpoints returns the ready addresses x TCP ports of an IPv4 or IPv6 EndpointSlice, as endpointslice.Read
// reads it (bounded, Ready unset counts as ready); a slice that lists no port yields port 0 (any port), one whose
// listed ports are all dropped (not TCP, no valid number) yields nothing.
func sliceEndpoints(es *discoveryv1.EndpointSlice) []Endpoint {
	s := endpointslice.Read(es)
	ports := s.Numbers()
	if s.NoPorts {
		ports = []uint16{0}
	}
	var out []Endpoint
	for _, a := range s.Addrs {
		for _, p := range ports {
			out = append(out, Endpoint{Addr: a, Port: p})
		}
	}
	return out
}
