package probe

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fanoutdev/fanout/bpf"
)

// Endpoint is one API-server endpoint: an address and a port (0 = any port).
type Endpoint struct {
	Addr netip.Addr
	Port uint16
	// ClusterIP marks a Service ClusterIP (matched before NAT) rather than a real endpoint.
	ClusterIP bool
}

func (e Endpoint) String() string {
	if e.Port == 0 {
		return e.Addr.String()
	}
	return netip.AddrPortFrom(e.Addr, e.Port).String()
}

// ParseEndpoints parses a comma-separated list of ip[:port] ("10.96.0.1:443,192.0.2.10,[::1]:6443,::1").
// A missing port means any port.
func ParseEndpoints(s string) ([]Endpoint, error) {
	var out []Endpoint
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if ap, err := netip.ParseAddrPort(f); err == nil {
			out = append(out, Endpoint{Addr: ap.Addr().Unmap(), Port: ap.Port()})
			continue
		}
		if a, err := netip.ParseAddr(strings.Trim(f, "[]")); err == nil {
			out = append(out, Endpoint{Addr: a.Unmap()})
			continue
		}
		// host:port with a bad port gives a clearer message than "invalid IP".
		if i := strings.LastIndexByte(f, ':'); i > 0 && !strings.Contains(f[:i], ":") {
			if _, err := strconv.ParseUint(f[i+1:], 10, 16); err != nil {
				return nil, fmt.Errorf("parse endpoint %q: bad port: %w", f, err)
			}
		}
		return nil, fmt.Errorf("parse endpoint %q: want ip or ip:port ([v6]:port)", f)
	}
	return out, nil
}

// key converts an endpoint to the kernel map key (bpf/endpoints.h).
func (e Endpoint) key() bpf.TrafficApiEndpointKey {
	var k bpf.TrafficApiEndpointKey
	a := e.Addr.Unmap()
	k.Port = e.Port
	if a.Is4() {
		b := a.As4()
		k.Family = afInet
		k.Addr[0] = binary.LittleEndian.Uint32(b[:])
	} else {
		b := a.As16()
		k.Family = afInet6
		for i := range 4 {
			k.Addr[i] = binary.LittleEndian.Uint32(b[i*4:])
		}
	}
	return k
}

func endpointFromKey(k bpf.TrafficApiEndpointKey, v bpf.TrafficApiEndpointValue) Endpoint {
	e := Endpoint{Port: k.Port, ClusterIP: v.Flags&endpointClusterIP != 0}
	if k.Family == afInet {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], k.Addr[0])
		e.Addr = netip.AddrFrom4(b)
	} else {
		var b [16]byte
		for i := range 4 {
			binary.LittleEndian.PutUint32(b[i*4:], k.Addr[i])
		}
		e.Addr = netip.AddrFrom16(b)
	}
	return e
}

const (
	afInet            = 2
	afInet6           = 10
	endpointClusterIP = 1
)
