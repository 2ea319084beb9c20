package blockmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/collector/pindir"
)

// Denied returns the enforce program's per-cgroup connect denial counts (summed over CPUs) from the pinned
// enforce_denied map. A pin dir whose enforce programs were never loaded has no such map: it returns an empty result.
func Denied(pinDir string) (map[uint64]uint64, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(pinDir, pindir.MapEnforceDenied), &ebpf.LoadPinOptions{ReadOnly: true})
	if errors.Is(err, os.ErrNotExist) {
		return map[uint64]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", pindir.MapEnforceDenied, err)
	}
	defer m.Close()
	return SumPerCPU(m)
}

// SumPerCPU reads a per-CPU hash of __u64 key -> __u64 counter and sums each key's CPUs.
func SumPerCPU(m *ebpf.Map) (map[uint64]uint64, error) {
	out := make(map[uint64]uint64)
	var (
		k    uint64
		vals []uint64
	)
	it := m.Iterate()
	for it.Next(&k, &vals) {
		var s uint64
		for _, v := range vals {
			s += v
		}
		out[k] = s
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read per-cpu counters: %w", err)
	}
	return out, nil
}
