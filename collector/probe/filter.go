package probe

import "github.com/fanoutdev/fanout/bpf"

// Mirrors of the prefilter hashes in bpf/endpoints.h (u32 arithmetic).
const (
	filterWords = 32
	filterShift = 21
)

func fold(k bpf.TrafficApiEndpointKey) uint32 {
	return k.Addr[0] ^ k.Addr[1] ^ k.Addr[2] ^ k.Addr[3]
}

func hashAny(fold uint32) uint32 { return (fold * 0x9E3779B1) >> filterShift }

func hashExact(fold uint32, port uint16) uint32 {
	return ((fold + uint32(port)*0x85EBCA6B) * 0x9E3779B1) >> filterShift
}

const fastV4Slots = len(bpf.TrafficApiFilterValue{}.Fast4)

// buildFilter computes the api_filter value for a set of endpoint keys: prefilter bits for all, and the first
// IPv4 port-specific endpoints in the fast table.
func buildFilter(keys []bpf.TrafficApiEndpointKey) bpf.TrafficApiFilterValue {
	var f bpf.TrafficApiFilterValue
	n := 0
	for _, k := range keys {
		if k.Family == afInet && k.Port != 0 && k.Addr[0] != 0 && n < fastV4Slots {
			f.Fast4[n] = bpf.TrafficApiFastV4{Addr: k.Addr[0], Port: k.Port}
			n++
		}
		fd := fold(k)
		if k.Port == 0 {
			h := hashAny(fd)
			f.Any[(h>>6)%filterWords] |= 1 << (h & 63)
		} else {
			h := hashExact(fd, k.Port)
			f.Exact[(h>>6)%filterWords] |= 1 << (h & 63)
		}
	}
	return f
}

// transitionFilter is the filter used while the endpoint set changes from old to new: prefilter bits of both
// sets, and only the fast entries of old that stay in the new set (the fast table must never name an endpoint
// missing from api_endpoints).
func transitionFilter(old, nu bpf.TrafficApiFilterValue, keep map[bpf.TrafficApiEndpointKey]bpf.TrafficApiEndpointValue) bpf.TrafficApiFilterValue {
	t := old
	for i := range t.Exact {
		t.Exact[i] |= nu.Exact[i]
		t.Any[i] |= nu.Any[i]
	}
	for i, e := range t.Fast4 {
		if _, ok := keep[bpf.TrafficApiEndpointKey{Addr: [4]uint32{e.Addr}, Port: e.Port, Family: afInet}]; !ok {
			t.Fast4[i] = bpf.TrafficApiFastV4{}
		}
	}
	return t
}
