package apiendpoints

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// Endpoint is one API-server endpoint. Its fields match collector/probe.Endpoint exactly, so the agent converts with
// probe.Endpoint(e).
type Endpoint struct {
	Addr netip.Addr
	Port uint16 // 0 = any port
	// ClusterIP marks a Service ClusterIP (matched before NAT) rather than a real endpoint.
	ClusterIP bool
}

func (e Endpoint) String() string {
	if e.Port == 0 {
		return e.Addr.String()
	}
	return netip.AddrPortFrom(e.Addr, e.Port).String()
}

// Environment variables kubelet sets in every pod for the default/kubernetes Service.
const (
	EnvServiceHost = "KUBERNETES_SERVICE_HOST"
	EnvServicePort = "KUBERNETES_SERVICE_PORT"
)

// FromEnv returns the in-cluster Service endpoint from KUBERNETES_SERVICE_HOST/PORT (lookup is os.LookupEnv in the
// agent). It returns nil without error when the host is unset (not in a cluster); a missing port means 443.
func FromEnv(lookup func(string) (string, bool)) ([]Endpoint, error) {
	host, ok := lookup(EnvServiceHost)
	if !ok || host == "" {
		return nil, nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("parse %s=%q: %w", EnvServiceHost, host, err)
	}
	port := uint64(443)
	if p, ok := lookup(EnvServicePort); ok && p != "" {
		if port, err = strconv.ParseUint(p, 10, 16); err != nil || port == 0 {
			return nil, fmt.Errorf("parse %s=%q: want a port 1-65535", EnvServicePort, p)
		}
	}
	return []Endpoint{{Addr: addr.Unmap(), Port: uint16(port), ClusterIP: true}}, nil
}

// normalize sorts and deduplicates by address and port; an address+port seen both as ClusterIP and as a real
// endpoint keeps ClusterIP.
func normalize(in []Endpoint) []Endpoint {
	type key struct {
		addr netip.Addr
		port uint16
	}
	seen := make(map[key]int, len(in))
	out := make([]Endpoint, 0, len(in))
	for _, e := range in {
		e.Addr = e.Addr.Unmap()
		if !e.Addr.IsValid() {
			continue
		}
		k := key{e.Addr, e.Port}
		if i, ok := seen[k]; ok {
			out[i].ClusterIP = out[i].ClusterIP || e.ClusterIP
			continue
		}
		seen[k] = len(out)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := a.Addr.Compare(b.Addr); c != 0 {
			return c
		}
		return cmp.Compare(a.Port, b.Port)
	})
	return out
}
