package probe

import (
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
)

// Counters are one cgroup's monotonic API-server traffic counters, summed over CPUs.
type Counters struct {
	TxPackets, RxPackets   uint64
	TxBytes, RxBytes       uint64 // payload bytes
	TxSegments, RxSegments uint64 // skbs carrying payload (TxSegments: the request-rate proxy)
	Connects               uint64
	TxDropped              uint64 // egress packets dropped by the kill switch
}

// Sub returns c - o field by field (for deltas; a counter that went backwards, e.g. an LRU-evicted and re-created
// entry, yields its new value).
func (c Counters) Sub(o Counters) Counters {
	d := func(a, b uint64) uint64 {
		if a < b {
			return a
		}
		return a - b
	}
	return Counters{
		TxPackets: d(c.TxPackets, o.TxPackets), RxPackets: d(c.RxPackets, o.RxPackets),
		TxBytes: d(c.TxBytes, o.TxBytes), RxBytes: d(c.RxBytes, o.RxBytes),
		TxSegments: d(c.TxSegments, o.TxSegments), RxSegments: d(c.RxSegments, o.RxSegments),
		Connects: d(c.Connects, o.Connects), TxDropped: d(c.TxDropped, o.TxDropped),
	}
}

// Add returns c + o field by field.
func (c Counters) Add(o Counters) Counters {
	return Counters{
		TxPackets: c.TxPackets + o.TxPackets, RxPackets: c.RxPackets + o.RxPackets,
		TxBytes: c.TxBytes + o.TxBytes, RxBytes: c.RxBytes + o.RxBytes,
		TxSegments: c.TxSegments + o.TxSegments, RxSegments: c.RxSegments + o.RxSegments,
		Connects: c.Connects + o.Connects, TxDropped: c.TxDropped + o.TxDropped,
	}
}

// IsZero reports whether every counter is 0.
func (c Counters) IsZero() bool { return c == Counters{} }

func sumCPUs(vals []bpf.TrafficCgroupTraffic) Counters {
	var c Counters
	for _, v := range vals {
		c.TxPackets += v.TxPackets
		c.RxPackets += v.RxPackets
		c.TxBytes += v.TxBytes
		c.RxBytes += v.RxBytes
		c.TxSegments += v.TxSegments
		c.RxSegments += v.RxSegments
		c.Connects += v.Connects
		c.TxDropped += v.TxDropped
	}
	return c
}

// ReadCounters returns every cgroup's counters, keyed by cgroup id (OverflowCgroup: cgroups that found the map
// full). During a handoff after an upgrade it also retires the old design's links once they have gone quiet.
func (p *Probe) ReadCounters() (map[uint64]Counters, error) {
	p.maintainHandoff(time.Now())
	out := make(map[uint64]Counters)
	var id uint64
	var vals []bpf.TrafficCgroupTraffic
	it := p.objs.TrafficCounters.Iterate()
	for it.Next(&id, &vals) {
		out[id] = sumCPUs(vals)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read traffic counters: %w", err)
	}
	slots, err := p.readSlots()
	if err != nil {
		return nil, err
	}
	for id, v := range slots {
		out[id] = out[id].Add(sumCPUs([]bpf.TrafficCgroupTraffic{bpf.TrafficCgroupTraffic(v.Traffic)}))
	}
	return out, nil
}

// MapPressure describes how full a BPF map is.
type MapPressure struct {
	Map        string
	Entries    int
	MaxEntries uint32
	// Full counts updates that failed because the map was full: for traffic_counters, kernel-side inserts that
	// failed (those cgroups are counted in the OverflowCgroup bucket); for api_endpoints, SetEndpoints calls
	// refused for size or a failed insert.
	Full uint64
}

// Pressure reports map pressure for traffic_counters and api_endpoints.
func (p *Probe) Pressure() ([]MapPressure, error) {
	n, err := countKeys(p.objs.TrafficCounters.Iterate(), new(uint64), new([]bpf.TrafficCgroupTraffic))
	if err != nil {
		return nil, fmt.Errorf("count traffic_counters: %w", err)
	}
	failed, err := p.stat(statInsertFailed)
	if err != nil {
		return nil, err
	}
	ne, err := countKeys(p.objs.ApiEndpoints.Iterate(), new(bpf.TrafficApiEndpointKey), new(bpf.TrafficApiEndpointValue))
	if err != nil {
		return nil, fmt.Errorf("count api_endpoints: %w", err)
	}
	out := []MapPressure{
		{Map: "traffic_counters", Entries: n, MaxEntries: p.objs.TrafficCounters.MaxEntries(), Full: failed},
		{Map: "api_endpoints", Entries: ne, MaxEntries: p.objs.ApiEndpoints.MaxEntries(), Full: p.endpointErrors.Load()},
	}
	if p.sock != nil {
		sp, err := p.slotPressure()
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	return out, nil
}

// InsertsFailed is how many times a cgroup found the counter map full (and was counted in the overflow bucket): the
// one figure of Pressure that needs no walk of the maps.
func (p *Probe) InsertsFailed() (uint64, error) { return p.stat(statInsertFailed) }

type iterator interface {
	Next(key, value any) bool
	Err() error
}

func countKeys(it iterator, k, v any) (int, error) {
	n := 0
	for it.Next(k, v) {
		n++
	}
	return n, it.Err()
}

// traffic_stats indexes (enum fanout_stat in bpf/traffic.h).
const (
	statInserts        = 0
	statInsertFailed   = 1
	statHandoffPackets = 2
)

// stat sums one traffic_stats counter over CPUs.
func (p *Probe) stat(idx uint32) (uint64, error) {
	var per []uint64
	if err := p.objs.TrafficStats.Lookup(idx, &per); err != nil {
		return 0, fmt.Errorf("read traffic_stats[%d]: %w", idx, err)
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Forget deletes the counters of cgroups that are gone (the map is not LRU: nothing is evicted by the kernel) and
// frees their slots. A cgroup that sends again is re-created from zero. The overflow bucket is never deleted.
func (p *Probe) Forget(ids []uint64) error {
	var errs []error
	for _, id := range ids {
		if id == OverflowCgroup {
			continue
		}
		if err := p.objs.TrafficCounters.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, err)
		}
		if p.sock != nil {
			if err := p.sock.ApiHealth.Delete(id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
			errs = append(errs, p.releaseSlot(id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("forget cgroups: %w", err)
	}
	return nil
}
