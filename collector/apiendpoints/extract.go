package apiendpoints

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
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

// sliceEndpoints returns the ready addresses x TCP ports of an IPv4 or IPv6 EndpointSlice. Ready unset counts as
// ready (the API's documented meaning); a slice without ports yields port 0 (any port).
func sliceEndpoints(es *discoveryv1.EndpointSlice) []Endpoint {
	if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
		return nil
	}
	var ports []uint16
	for _, p := range es.Ports {
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 {
			continue
		}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP {
			continue
		}
		ports = append(ports, uint16(*p.Port))
	}
	if len(es.Ports) == 0 {
		ports = []uint16{0}
	}
	var out []Endpoint
	for _, ep := range es.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		for _, s := range ep.Addresses {
			a, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			for _, p := range ports {
				out = append(out, Endpoint{Addr: a.Unmap(), Port: p})
			}
		}
	}
	return out
}
