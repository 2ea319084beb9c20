package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/pindir"
)

// Cgroup slots of the per-socket design (bpf/sockops.bpf.c): a cgroup's first API connect takes a slot index, and
// its sockets fold counters and latency into that slot's per-CPU value with array lookups instead of two hash
// lookups per response. Cgroups that find no free slot, and sockets whose cgroup released its slot, count through
// traffic_counters and api_health by cgroup id; ReadCounters and ReadHealth add both.

// DefaultAPISlots is the slot maps' size when Config.APISlots is 0: 255 cgroups with API sockets (index 0 means
// "no slot"). Per-CPU memory: APISlots x 296 bytes x CPUs (256 slots: 74 KiB per CPU).
const DefaultAPISlots = 256

// MaxAPISlots bounds Config.APISlots (the per-CPU value array is APISlots x 296 bytes per CPU).
const MaxAPISlots = 1 << 14

var slotMaps = []string{pindir.MapAPIFreeSlots, pindir.MapAPICgroupSlots, pindir.MapAPISlotOwner, pindir.MapAPISlotValues}

// initSlots fills the free-slot queue with 1..max-1 when no cgroup holds a slot and none is free: new maps, or
// maps left empty by an agent that stopped while filling them. Pinned maps in use are left as they are (the
// kernel allocates from the queue, so refilling one in use would hand a slot to two cgroups).
func (p *Probe) initSlots() error {
	if p.sock == nil {
		return nil
	}
	var id uint64
	var slot uint32
	if p.sock.ApiCgroupSlots.Iterate().Next(&id, &slot) {
		return nil
	}
	err := p.sock.ApiFreeSlots.Lookup(nil, &slot)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("peek api_free_slots: %w", err)
	}
	for i := uint32(1); i < p.sock.ApiSlotValues.MaxEntries(); i++ {
		// New maps are zero; maps of an agent that stopped while filling them may hold a slot's old counts.
		var owner uint64
		if err := p.sock.ApiSlotOwner.Lookup(i, &owner); err != nil {
			return fmt.Errorf("read api_slot_owner[%d]: %w", i, err)
		}
		if owner != 0 {
			if err := p.sock.ApiSlotOwner.Update(i, uint64(0), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("clear api_slot_owner[%d]: %w", i, err)
			}
		}
		raw, err := p.sock.ApiSlotValues.LookupBytes(i)
		if err != nil {
			return fmt.Errorf("read api_slot_values[%d]: %w", i, err)
		}
		if slices.ContainsFunc(raw, func(b byte) bool { return b != 0 }) {
			if err := p.sock.ApiSlotValues.Update(i, make([]bpf.SockopsApiSlot, ebpf.MustPossibleCPU()), ebpf.UpdateAny); err != nil {
				return fmt.Errorf("clear api_slot_values[%d]: %w", i, err)
			}
		}
		if err := p.sock.ApiFreeSlots.Update(nil, i, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("push api_free_slots: %w", err)
		}
	}
	return nil
}

// readSlots returns the values of the slots cgroups hold, summed over CPUs, keyed by cgroup id. It reads the owner
// array in one batch and each owned slot's per-CPU value as raw bytes, decoded by hand: the agent runs it twice a
// second, and cilium/ebpf's reflection-based decoding of per-CPU structs kept ~6 MiB more of the binary resident.
func (p *Probe) readSlots() (map[uint64]bpf.SockopsApiSlot, error) {
	out := make(map[uint64]bpf.SockopsApiSlot)
	if p.sock == nil {
		return out, nil
	}
	n := int(p.sock.ApiSlotOwner.MaxEntries())
	keys, owners := make([]uint32, n), make([]uint64, n)
	var cursor ebpf.MapBatchCursor
	got, err := p.sock.ApiSlotOwner.BatchLookup(&cursor, keys, owners, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("read api_slot_owner: %w", err)
	}
	for i := range got {
		if keys[i] == 0 || owners[i] == 0 {
			continue // free (or being taken: its sockets count by cgroup id meanwhile)
		}
		raw, err := p.sock.ApiSlotValues.LookupBytes(keys[i])
		if err != nil {
			return nil, fmt.Errorf("read api_slot_values[%d]: %w", keys[i], err)
		}
		v, err := decodeSlot(raw)
		if err != nil {
			return nil, fmt.Errorf("read api_slot_values[%d]: %w", keys[i], err)
		}
		out[owners[i]] = v
	}
	return out, nil
}

// slotWords is struct api_slot in 64-bit words: cgroup_traffic (8), latency buckets, latency sum.
const slotWords = 8 + LatencyBuckets + 1

// decodeSlot sums a per-CPU api_slot value (the kernel's buffer: one 8-byte aligned value per possible CPU).
func decodeSlot(raw []byte) (bpf.SockopsApiSlot, error) {
	var w [slotWords]uint64
	if len(raw) == 0 || len(raw)%(8*slotWords) != 0 {
		return bpf.SockopsApiSlot{}, fmt.Errorf("per-CPU value of %d bytes, want a multiple of %d", len(raw), 8*slotWords)
	}
	for off := 0; off < len(raw); off += 8 * slotWords {
		for i := range w {
			w[i] += binary.NativeEndian.Uint64(raw[off+8*i:])
		}
	}
	var s bpf.SockopsApiSlot
	t := &s.Traffic
	t.TxPackets, t.RxPackets, t.TxBytes, t.RxBytes = w[0], w[1], w[2], w[3]
	t.TxSegments, t.RxSegments, t.Connects, t.TxDropped = w[4], w[5], w[6], w[7]
	copy(s.Latency[:], w[8:8+LatencyBuckets])
	s.LatencySumUs = w[8+LatencyBuckets]
	return s, nil
}

// releaseSlot gives back the slot of a cgroup that is gone: its sockets that linger (closing) stop using it at
// once (the owner no longer matches) and count by cgroup id; the slot is zeroed before another cgroup can take it.
func (p *Probe) releaseSlot(id uint64) error {
	if p.sock == nil {
		return nil
	}
	var slot uint32
	err := p.sock.ApiCgroupSlots.Lookup(id, &slot)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up slot of cgroup %d: %w", id, err)
	}
	if err := p.sock.ApiCgroupSlots.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete slot of cgroup %d: %w", id, err)
	}
	if slot == 0 || slot >= p.sock.ApiSlotValues.MaxEntries() {
		return nil
	}
	if err := p.sock.ApiSlotOwner.Update(slot, uint64(0), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("clear api_slot_owner[%d]: %w", slot, err)
	}
	if err := p.sock.ApiSlotValues.Update(slot, make([]bpf.SockopsApiSlot, ebpf.MustPossibleCPU()), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("clear api_slot_values[%d]: %w", slot, err)
	}
	if err := p.sock.ApiFreeSlots.Update(nil, slot, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("free slot %d: %w", slot, err)
	}
	return nil
}

// slotPressure reports how many slots cgroups hold. When all are held, further cgroups count by cgroup id: correct,
// at the cost of the hash lookups per response.
func (p *Probe) slotPressure() (MapPressure, error) {
	n, err := countKeys(p.sock.ApiCgroupSlots.Iterate(), new(uint64), new(uint32))
	if err != nil {
		return MapPressure{}, fmt.Errorf("count api_cgroup_slots: %w", err)
	}
	return MapPressure{Map: "api_cgroup_slots", Entries: n, MaxEntries: p.sock.ApiSlotValues.MaxEntries() - 1}, nil
}
