package enforce

import (
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
)

// restore rebuilds the in-memory state from the pinned maps: workload directives, their blocked pods, and removes
// entries that expired or whose cgroup is gone. Established API connections of restored blocked pods are torn down
// again (they may have been opened before the block reached the kernel).
func (e *Enforcer) restore() error {
	now := e.clock.BootNow()
	recs, err := e.maps.ListWorkloads()
	if err != nil {
		return err
	}
	entries, err := e.maps.List()
	if err != nil {
		return err
	}
	pods := map[uint64]podDir{}
	for _, pd := range e.tree.Scan() {
		pods[pd.id] = pd
	}
	ex := e.exemptions(now)
	e.mu.Lock()
	byHash := map[uint32]string{}
	for name, r := range recs {
		if r.ExpiresBootNs != 0 && now >= r.ExpiresBootNs {
			e.maps.DeleteWorkload(name)
			continue
		}
		ws := newWorkloadState()
		ws.expires, ws.epoch = r.ExpiresBootNs, uint64(r.Epoch)
		if r.Flags&blockmap.FlagReleasing != 0 {
			ws.releasing, ws.rampEnd = true, r.RampEndBootNs
			// A late block of the released trip must not cancel the resumed ramp.
			e.released[name] = max(e.released[name], ws.epoch)
		}
		e.workloads[name] = ws
		byHash[blockmap.WorkloadHash(name)] = name
	}
	restored := map[string][]uint64{}
	for id, en := range entries {
		if !en.Active(now) {
			e.maps.Delete(id)
			continue
		}
		name, ok := byHash[en.WorkloadHash]
		if !ok || en.Flags&blockmap.FlagBreakGlass != 0 {
			e.names[id] = e.labelFor(id, en)
			continue // a break-glass entry (fanoutctl node): kept as is until its TTL
		}
		pd, exists := pods[id]
		if !exists {
			e.maps.Delete(id) // the pod is gone
			continue
		}
		p := e.remember(pd, name)
		ws := e.workloads[name]
		if key, x, ok := ex.Match(id, p.uid); ok {
			if err := e.exemptPodLocked(ws, p, id, key, x); err != nil {
				e.log.Error("exempt restored pod", "workload", name, "err", err)
			}
			continue
		}
		ws.pods[id] = p
		restored[name] = append(restored[name], id)
	}
	// Releasing workloads: the record's ramp end is this node's place in the fleet-wide ramp (release); all the pods
	// left are re-admitted then, as if the agent had not restarted.
	for name, ws := range e.workloads {
		if !ws.releasing {
			continue
		}
		at := max(ws.rampEnd, now)
		for _, p := range ws.pods {
			p.releaseAt = at
		}
		e.log.Info("release ramp resumed", "workload", name, "pods", len(ws.pods), "in", time.Duration(at-now))
	}
	e.mu.Unlock()
	for name, ids := range restored {
		e.log.Info("block restored from pinned state", "workload", name, "pods", len(ids))
		if err := e.destroySockets(name, ids); err != nil {
			e.log.Warn("tear down restored pods' connections", "workload", name, "err", err)
		}
	}
	// Pods of blocked workloads that appeared while no agent ran.
	for _, pd := range pods {
		if _, ok := entries[pd.id]; !ok {
			e.podCreated(pd)
		}
	}
	return nil
}
