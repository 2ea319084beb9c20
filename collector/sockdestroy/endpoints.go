package sockdestroy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/collector/pindir"
)

// apiEndpointKeyLen is sizeof(struct api_endpoint_key): __u32 addr[4] (address bytes in network order), __u16 port
// (host order), __u8 family, __u8 _pad.
const apiEndpointKeyLen = 20

// ReadEndpoints returns the API destinations held in the pinned api_endpoints map under pinDir. It reads the map as
// raw bytes, so callers need no BPF objects (the CLI uses it).
func ReadEndpoints(pinDir string) ([]Destination, error) {
	p := filepath.Join(pinDir, pindir.MapAPIEndpoints)
	m, err := ebpf.LoadPinnedMap(p, &ebpf.LoadPinOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	defer m.Close()
	if ks := m.KeySize(); ks != apiEndpointKeyLen {
		return nil, fmt.Errorf("open %s: key size %d, want %d", p, ks, apiEndpointKeyLen)
	}
	var (
		out []Destination
		k   [apiEndpointKeyLen]byte
		v   []byte
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		d, ok := decodeEndpointKey(k)
		if ok {
			out = append(out, d)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return out, nil
}

func decodeEndpointKey(k [apiEndpointKeyLen]byte) (Destination, bool) {
	port := binary.NativeEndian.Uint16(k[16:])
	switch k[18] {
	case afInet:
		return Destination{Addr: netip.AddrFrom4([4]byte(k[0:4])), Port: port}, true
	case afInet6:
		return Destination{Addr: netip.AddrFrom16([16]byte(k[0:16])), Port: port}, true
	}
	return Destination{}, false
}
