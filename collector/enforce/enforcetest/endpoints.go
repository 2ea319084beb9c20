package enforcetest

import (
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
)

// RegisterEndpoints adds API endpoints to the pinned api_endpoints map of pinDir and sets their api_filter bits
// (bpf/endpoints.h; the agent does this through collector/probe). The maps must exist (load a BPF object first).
func RegisterEndpoints(t testing.TB, pinDir string, eps ...netip.AddrPort) {
	t.Helper()
	epm, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "api_endpoints"), nil)
	if err != nil {
		t.Fatalf("open api_endpoints: %v", err)
	}
	defer epm.Close()
	fm, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, "api_filter"), nil)
	if err != nil {
		t.Fatalf("open api_filter: %v", err)
	}
	defer fm.Close()

	var f bpf.EnforceApiFilterValue
	if err := fm.Lookup(uint32(0), &f); err != nil {
		t.Fatalf("read api_filter: %v", err)
	}
	for _, ep := range eps {
		k := endpointKey(ep)
		fold := k.Addr[0] ^ k.Addr[1] ^ k.Addr[2] ^ k.Addr[3]
		if k.Port == 0 {
			h := (fold * 0x9E3779B1) >> 21
			f.Any[(h>>6)%32] |= 1 << (h & 63)
		} else {
			h := ((fold + uint32(k.Port)*0x85EBCA6B) * 0x9E3779B1) >> 21
			f.Exact[(h>>6)%32] |= 1 << (h & 63)
		}
	}
	if err := fm.Update(uint32(0), f, ebpf.UpdateAny); err != nil {
		t.Fatalf("write api_filter: %v", err)
	}
	for _, ep := range eps {
		if err := epm.Update(endpointKey(ep), bpf.EnforceApiEndpointValue{}, ebpf.UpdateAny); err != nil {
			t.Fatalf("add endpoint %s: %v", ep, err)
		}
	}
}

func endpointKey(ep netip.AddrPort) bpf.EnforceApiEndpointKey {
	var k bpf.EnforceApiEndpointKey
	a := ep.Addr().Unmap()
	k.Port = ep.Port()
	if a.Is4() {
		b := a.As4()
		k.Family = 2
		k.Addr[0] = binary.LittleEndian.Uint32(b[:])
		return k
	}
	b := a.As16()
	k.Family = 10
	for i := range 4 {
		k.Addr[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	return k
}
