package probe

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
)

// SetEndpoints replaces the API-server endpoint set. The prefilter is widened to old ∪ new before entries change
// and narrowed after, so a packet to an endpoint present in both sets is never missed.
func (p *Probe) SetEndpoints(eps []Endpoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("set endpoints: probe closed")
	}
	want := make(map[bpf.TrafficApiEndpointKey]bpf.TrafficApiEndpointValue, len(eps))
	keys := make([]bpf.TrafficApiEndpointKey, 0, len(eps))
	for _, e := range eps {
		if !e.Addr.IsValid() {
			return fmt.Errorf("set endpoints: invalid address in %v", e)
		}
		k := e.key()
		var v bpf.TrafficApiEndpointValue
		if e.ClusterIP {
			v.Flags = endpointClusterIP
		}
		if _, dup := want[k]; !dup {
			keys = append(keys, k)
		}
		want[k] = v
	}
	if n := len(want); n > int(p.objs.ApiEndpoints.MaxEntries()) {
		p.endpointErrors.Add(1)
		return fmt.Errorf("set endpoints: %d endpoints exceed the map size %d", n, p.objs.ApiEndpoints.MaxEntries())
	}

	var have []bpf.TrafficApiEndpointKey
	var k bpf.TrafficApiEndpointKey
	var v bpf.TrafficApiEndpointValue
	it := p.objs.ApiEndpoints.Iterate()
	for it.Next(&k, &v) {
		have = append(have, k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("set endpoints: list current: %w", err)
	}

	zero := uint32(0)
	newFilter := buildFilter(keys)
	var oldFilter bpf.TrafficApiFilterValue
	if err := p.objs.ApiFilter.Lookup(zero, &oldFilter); err != nil {
		return fmt.Errorf("set endpoints: read filter: %w", err)
	}
	if err := p.objs.ApiFilter.Put(zero, transitionFilter(oldFilter, newFilter, want)); err != nil {
		return fmt.Errorf("set endpoints: widen filter: %w", err)
	}
	for k, v := range want {
		if err := p.objs.ApiEndpoints.Put(k, v); err != nil {
			p.endpointErrors.Add(1)
			return fmt.Errorf("set endpoints: put %v: %w", endpointFromKey(k, v), err)
		}
	}
	for _, k := range have {
		if _, keep := want[k]; keep {
			continue
		}
		if err := p.objs.ApiEndpoints.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("set endpoints: delete stale: %w", err)
		}
	}
	if err := p.objs.ApiFilter.Put(zero, newFilter); err != nil {
		return fmt.Errorf("set endpoints: narrow filter: %w", err)
	}
	p.log.Info("api endpoints set", "count", len(want))
	return nil
}

// Endpoints lists the endpoint set currently in the kernel.
func (p *Probe) Endpoints() ([]Endpoint, error) {
	var out []Endpoint
	var k bpf.TrafficApiEndpointKey
	var v bpf.TrafficApiEndpointValue
	it := p.objs.ApiEndpoints.Iterate()
	for it.Next(&k, &v) {
		out = append(out, endpointFromKey(k, v))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	return out, nil
}
