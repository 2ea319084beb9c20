package probe

import (
	"errors"
	"fmt"

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
	zero := make([]bpf.SockopsApiSlot, ebpf.MustPossibleCPU())
	for i := uint32(1); i < p.sock.ApiSlotValues.MaxEntries(); i++ {
		if err := p.sock.ApiSlotOwner.Update(i, uint64(0), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("clear api_slot_owner[%d]: %w", i, err)
		}
		if err := p.sock.ApiSlotValues.Update(i, zero, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("clear api_slot_values[%d]: %w", i, err)
		}
		if err := p.sock.ApiFreeSlots.Update(nil, i, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("push api_free_slots: %w", err)
		}
	}
	return nil
}

// readSlots returns the values of the slots cgroups hold, summed over CPUs, keyed by cgroup id.
func (p *Probe) readSlots() (map[uint64]bpf.SockopsApiSlot, error) {
	out := make(map[uint64]bpf.SockopsApiSlot)
	if p.sock == nil {
		return out, nil
	}
	var id uint64
	var slot uint32
	var per []bpf.SockopsApiSlot
	it := p.sock.ApiCgroupSlots.Iterate()
	for it.Next(&id, &slot) {
		var owner uint64
		if err := p.sock.ApiSlotOwner.Lookup(slot, &owner); err != nil {
			return nil, fmt.Errorf("read api_slot_owner[%d]: %w", slot, err)
		}
		if owner != id {
			continue // being taken or released: its sockets count by cgroup id meanwhile
		}
		if err := p.sock.ApiSlotValues.Lookup(slot, &per); err != nil {
			return nil, fmt.Errorf("read api_slot_values[%d]: %w", slot, err)
		}
		out[id] = sumSlot(per)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read api_cgroup_slots: %w", err)
	}
	return out, nil
}

func sumSlot(per []bpf.SockopsApiSlot) bpf.SockopsApiSlot {
	var s bpf.SockopsApiSlot
	for _, v := range per {
		t := &s.Traffic
		t.TxPackets += v.Traffic.TxPackets
		t.RxPackets += v.Traffic.RxPackets
		t.TxBytes += v.Traffic.TxBytes
		t.RxBytes += v.Traffic.RxBytes
		t.TxSegments += v.Traffic.TxSegments
		t.RxSegments += v.Traffic.RxSegments
		t.Connects += v.Traffic.Connects
		t.TxDropped += v.Traffic.TxDropped
		for i := range s.Latency {
			s.Latency[i] += v.Latency[i]
		}
		s.LatencySumUs += v.LatencySumUs
	}
	return s
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
