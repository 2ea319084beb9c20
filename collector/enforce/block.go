package enforce

import (
	"context"
	"errors"
	"fmt"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

func (e *Enforcer) block(d Directive) error {
	if e.prot.set.Match(d.Workload) {
		e.refuse(d.Workload, ReasonProtected, "block refused: workload is protected", "reason", d.Reason)
		return fmt.Errorf("block %s: %w", d.Workload, ErrProtected)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = e.cfg.DefaultTTL
	}
	ttl = min(ttl, e.cfg.MaxTTL)
	now := e.clock.BootNow()
	expires := blockmap.ExpiresIn(now, ttl)

	e.mu.Lock()
	if d.Epoch != 0 && d.Epoch <= e.released[d.Workload] {
		e.mu.Unlock()
		return fmt.Errorf("block %s of epoch %d after its release: %w", d.Workload, d.Epoch, ErrStale)
	}
	ws := e.workloads[d.Workload]
	if ws == nil {
		ws = newWorkloadState()
		e.workloads[d.Workload] = ws
	}
	renewal := len(ws.pods) > 0 && !ws.releasing
	ws.expires, ws.releasing, ws.rampEnd = expires, false, 0
	if d.Epoch != 0 {
		ws.epoch = d.Epoch
	}
	err := e.maps.PutWorkload(d.Workload, blockmap.WorkloadRecord{ExpiresBootNs: expires, Epoch: blockmap.EpochOf(ws.epoch)})
	ex := e.exemptions(now)
	var blocked []uint64
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, pd := range e.tree.Scan() {
		wl, ok := e.deps.Workloads.WorkloadOf(pd.uid)
		if !ok {
			e.pending[pd.uid] = pd
			continue
		}
		p := e.remember(pd, wl)
		if wl != d.Workload {
			continue
		}
		ok, err := e.blockPodLocked(ws, p, pd.id, expires, ex)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			blocked = append(blocked, pd.id)
		}
	}
	e.mu.Unlock()

	if !renewal {
		e.log.Info("workload blocked", "workload", d.Workload, "pods", len(blocked), "ttl", ttl, "reason", d.Reason)
	} else {
		e.log.Debug("workload block renewed", "workload", d.Workload, "pods", len(blocked), "ttl", ttl)
	}
	if err := e.destroySockets(d.Workload, blocked); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("block %s: %w", d.Workload, errors.Join(errs...))
	}
	return nil
}

// blockPodLocked puts one pod cgroup of ws in the block list unless the pod itself is protected (refused and
// counted once per pod) or exempt by break-glass (ex). Returns whether the pod is blocked.
func (e *Enforcer) blockPodLocked(ws *workloadState, p *pod, id uint64, expires uint64, ex blockmap.ExemptSet) (bool, error) {
	if key, x, ok := ex.Match(id, p.uid); ok {
		return false, e.exemptPodLocked(ws, p, id, key, x)
	}
	if reason := e.podProtected(p.uid); reason != "" {
		if !ws.refused[id] {
			ws.refused[id] = true
			e.refuseLocked(p.workload, reason, "block of pod refused", "pod_uid", p.uid)
		}
		return false, nil
	}
	if err := e.maps.Put(id, blockmap.Entry{ExpiresBootNs: expires, WorkloadHash: blockmap.WorkloadHash(p.workload)}); err != nil {
		return false, err
	}
	p.releaseAt = 0
	ws.pods[id] = p
	delete(ws.exempt, id)
	return true, nil
}

// exemptPodLocked keeps a pod of ws out of the block list while its break-glass exemption x (recorded under cgroup
// id key) holds: an entry left for it (written before the exemption, or by a directive racing `fanoutctl node
// unblock`) is removed, and an exemption that does not name the pod's workload (the pod was unblocked before any
// agent knew it) gets it, for `fanoutctl node list`.
func (e *Enforcer) exemptPodLocked(ws *workloadState, p *pod, id, key uint64, x blockmap.Exemption) error {
	delete(ws.pods, id)
	if _, seen := ws.exempt[id]; seen {
		return nil
	}
	ws.exempt[id] = p
	e.log.Info("pod exempt by break-glass, not blocked", "workload", p.workload, "pod_uid", p.uid,
		"cgroup_id", id, "exempt_for", x.Remaining(e.clock.BootNow()))
	var errs []error
	if err := e.maps.Delete(id); err != nil {
		errs = append(errs, fmt.Errorf("unblock exempt pod %s: %w", p.uid, err))
	}
	if x.Workload == "" || x.PodUID == "" {
		if x.Workload == "" {
			x.Workload = p.workload
		}
		if x.PodUID == "" {
			x.PodUID = p.uid
		}
		errs = append(errs, e.maps.PutExempt(key, x))
	}
	return errors.Join(errs...)
}

// exemptions returns the break-glass exemptions in force at now. When they cannot be read, the kill switch fails
// toward blocking (logged).
func (e *Enforcer) exemptions(now uint64) blockmap.ExemptSet {
	all, err := e.maps.ListExempt()
	if err != nil {
		e.log.Error("read break-glass exemptions", "err", err)
	}
	return blockmap.NewExemptSet(all, now)
}

func (e *Enforcer) podProtected(uid string) string {
	if uid == e.selfPod {
		return ReasonSelf
	}
	if pr, ok := e.deps.Workloads.(PriorityResolver); ok {
		if class, ok := pr.PriorityClassOf(uid); ok && criticalPriorityClasses[class] {
			return ReasonCritical
		}
	}
	return ""
}

func (e *Enforcer) destroySockets(workload string, podIDs []uint64) error {
	if len(podIDs) == 0 {
		return nil
	}
	dests, err := e.deps.Destinations()
	if err != nil {
		return fmt.Errorf("api destinations: %w", err)
	}
	var ids []uint64
	e.mu.Lock()
	for _, id := range podIDs {
		if p := e.known[id]; p != nil {
			sub, err := e.tree.SubtreeIDs(p.path)
			if err == nil {
				ids = append(ids, sub...)
			}
		}
	}
	e.mu.Unlock()
	n, err := e.sockets.Destroy(context.Background(), sockdestroy.Filter{CgroupIDs: ids, Dests: dests})
	total := 0
	for _, c := range n {
		total += c
	}
	e.mu.Lock()
	e.destroyed[workload] += float64(total)
	e.mu.Unlock()
	if total > 0 {
		e.log.Info("api connections torn down", "workload", workload, "sockets", total)
	}
	if err != nil {
		return fmt.Errorf("destroy sockets: %w", err)
	}
	return nil
}

func (e *Enforcer) refuse(workload, reason, msg string, kv ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refuseLocked(workload, reason, msg, kv...)
}

func (e *Enforcer) refuseLocked(workload, reason, msg string, kv ...any) {
	e.refused[[2]string{workload, reason}]++
	e.log.Warn(msg, append([]any{"workload", workload, "refusal", reason}, kv...)...)
}
