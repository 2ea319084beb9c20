package endpointslice

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// Bounds on what Read keeps of one slice; the rest is dropped, in slice order. The API server's own slice has one
// address per replica and one port, so the bounds only bite on hostile or broken input. Their product is the size of
// the agent's api_endpoints BPF map (1024), so one slice alone can never yield more address-port pairs than it holds.
const (
	// MaxAddresses is the number of ready addresses kept from one slice.
	MaxAddresses = 128
	// MaxPorts is the number of TCP ports kept from one slice.
	MaxPorts = 8
)

// Port is one TCP port of a slice.
type Port struct {
	Name   string // "" when unnamed
	Number uint16 // 1-65535
}

// Slice is what Read keeps of an EndpointSlice.
type Slice struct {
	// Addrs are the addresses of the ready endpoints, in slice order, unmapped (::ffff:a.b.c.d becomes a.b.c.d),
	// not deduplicated; at most MaxAddresses.
	Addrs []netip.Addr
	// Ports are the valid TCP ports, in slice order; at most MaxPorts.
	Ports []Port
	// NoPorts is set when the slice lists no port at all (as opposed to listing only ports Read drops).
	NoPorts bool
}

// Read returns the ready addresses and the TCP ports of an IPv4 or IPv6 EndpointSlice; any other address type (FQDN)
// yields the zero Slice. An endpoint whose Ready condition is unset counts as ready (the API's documented meaning);
// an address that does not parse as an IP is skipped. A port counts when its number is set and 1-65535 and its
// protocol is TCP or unset (the API's default).
func Read(es *discoveryv1.EndpointSlice) Slice {
	if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
		return Slice{}
	}
	s := Slice{NoPorts: len(es.Ports) == 0}
	for _, p := range es.Ports {
		if len(s.Ports) == MaxPorts {
			break
		}
		if p.Port == nil || *p.Port <= 0 || *p.Port > 65535 || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
			continue
		}
		port := Port{Number: uint16(*p.Port)}
		if p.Name != nil {
			port.Name = *p.Name
		}
		s.Ports = append(s.Ports, port)
	}
	for _, ep := range es.Endpoints {
		if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
			continue
		}
		for _, a := range ep.Addresses {
			if len(s.Addrs) == MaxAddresses {
				return s
			}
			if ip, err := netip.ParseAddr(a); err == nil {
				s.Addrs = append(s.Addrs, ip.Unmap())
			}
		}
	}
	return s
}

// Numbers returns the port numbers of s.Ports, in order (nil when there is none).
func (s Slice) Numbers() []uint16 {
	var out []uint16
	for _, p := range s.Ports {
		out = append(out, p.Number)
	}
	return out
}

// Preferred returns the first port named name, else the first port; false when the slice has no TCP port.
func (s Slice) Preferred(name string) (uint16, bool) {
	if len(s.Ports) == 0 {
		return 0, false
	}
	for _, p := range s.Ports {
		if p.Name == name {
			return p.Number, true
		}
	}
	return s.Ports[0].Number, true
}
