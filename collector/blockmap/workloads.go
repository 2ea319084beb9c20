package blockmap

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// WorkloadRecord is one workload directive kept in the pinned blocked_workloads map, so that a restarted agent
// blocks new pods of the workload again and `fanoutctl node list` can name the blocked cgroups.
type WorkloadRecord struct {
	ExpiresBootNs uint64 // the directive's TTL deadline (0 = none)
	RampEndBootNs uint64 // with FlagReleasing: when the release ramp ends
	Flags         uint32
	// Epoch is the trip the directive belongs to (the aggregator's epochs are unix seconds; 0 = unknown, or an epoch
	// that does not fit): a restarted agent refuses a late block of a trip it had already released. It takes what
	// was padding, so records pinned by earlier versions read as epoch 0.
	Epoch uint32
}

// EpochOf returns the record field for a directive epoch (0 when it does not fit in 32 bits).
func EpochOf(epoch uint64) uint32 {
	if epoch > 1<<32-1 {
		return 0
	}
	return uint32(epoch)
}

type workloadKey [MaxWorkloadName]byte

func keyOf(workload string) (workloadKey, error) {
	var k workloadKey
	if len(workload) == 0 || len(workload) >= MaxWorkloadName {
		return k, fmt.Errorf("workload name %q: length must be 1..%d", workload, MaxWorkloadName-1)
	}
	copy(k[:], workload)
	return k, nil
}

// PutWorkload stores the directive record of workload.
func (m *Maps) PutWorkload(workload string, r WorkloadRecord) error {
	k, err := keyOf(workload)
	if err != nil {
		return err
	}
	if err := m.workloads.Update(k, r, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("put workload %s: %w", workload, err)
	}
	return nil
}

// DeleteWorkload removes the directive record of workload (absent is not an error).
func (m *Maps) DeleteWorkload(workload string) error {
	k, err := keyOf(workload)
	if err != nil {
		return err
	}
	err = m.workloads.Delete(k)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete workload %s: %w", workload, err)
	}
	return nil
}

// ListWorkloads returns every workload directive record.
func (m *Maps) ListWorkloads() (map[string]WorkloadRecord, error) {
	out := make(map[string]WorkloadRecord)
	var (
		k workloadKey
		r WorkloadRecord
	)
	it := m.workloads.Iterate()
	for it.Next(&k, &r) {
		name := k[:]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		out[string(name)] = r
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list workloads: %w", err)
	}
	return out, nil
}
