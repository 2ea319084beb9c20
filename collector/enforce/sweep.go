package enforce

import (
	"fmt"

	"github.com/fanoutdev/fanout/collector/blockmap"
)

// fullCheckEvery: every how many sweeps every known pod's cgroup is checked for removal (5 s at the default interval).
const fullCheckEvery = 20

// sweep expires TTLs, advances release ramps, retries pods of unknown identity and compacts the block list.
func (e *Enforcer) sweep() {
	now := e.clock.BootNow()
	var retry []podDir
	e.mu.Lock()
	for name, ws := range e.workloads {
		if ws.expires != 0 && now >= ws.expires {
			e.log.Info("workload block expired", "workload", name, "pods", len(ws.pods))
			e.dropWorkloadLocked(name, ws)
		}
	}
	e.advanceLocked(now)
	e.adoptLocked(now)
	e.reconcileExemptLocked(now)
	for _, pd := range e.pending {
		retry = append(retry, pd)
	}
	// A pod removed before the watcher watched its parent (found by a scan, gone before the watch was added) sends
	// no event: the sweep notices it is gone. The pods of blocked workloads are checked every sweep; every pod only
	// every fullCheckEvery sweeps (a stat per pod of the node 4 times a second was a quarter of the agent's CPU).
	var vanished []string
	e.sweeps++
	if e.sweeps%fullCheckEvery == 0 {
		for _, p := range e.known {
			if !e.tree.Exists(p.path) {
				vanished = append(vanished, p.path)
			}
		}
	} else {
		for _, ws := range e.workloads {
			for _, pods := range []map[uint64]*pod{ws.pods, ws.exempt} {
				for _, p := range pods {
					if !e.tree.Exists(p.path) {
						vanished = append(vanished, p.path)
					}
				}
			}
		}
	}
	if _, err := e.maps.Compact(); err != nil {
		e.log.Error("compact block list", "err", err)
	}
	e.mu.Unlock()
	for _, path := range vanished {
		e.podRemoved(path)
	}
	for _, pd := range retry {
		e.podCreated(pd)
	}
}

func (e *Enforcer) dropWorkloadLocked(name string, ws *workloadState) {
	for id := range ws.pods {
		if err := e.maps.Delete(id); err != nil {
			e.log.Error("unblock pod", "workload", name, "err", err)
		}
	}
	if err := e.maps.DeleteWorkload(name); err != nil {
		e.log.Error("forget workload", "workload", name, "err", err)
	}
	delete(e.workloads, name)
}

// reconcileExemptLocked removes expired exemptions, lifts the blocks of pods exempted while the agent runs
// (`fanoutctl node unblock` deletes the entry; this keeps the workload's state and reports in line) and blocks again
// the pods of still-blocked workloads whose exemption lapsed or was cleared by `fanoutctl node block`.
func (e *Enforcer) reconcileExemptLocked(now uint64) {
	active, expired, err := e.maps.PruneExempt(now)
	if err != nil {
		e.log.Error("prune break-glass exemptions", "err", err)
		if active == nil {
			return
		}
	}
	for id, x := range expired {
		e.log.Info("break-glass exemption expired", "cgroup_id", id, "pod_uid", x.PodUID, "workload", x.Workload)
	}
	ex := blockmap.NewExemptSet(active, now)
	for name, ws := range e.workloads {
		if ex.Len() > 0 {
			for id, p := range ws.pods {
				if key, x, ok := ex.Match(id, p.uid); ok {
					if err := e.exemptPodLocked(ws, p, id, key, x); err != nil {
						e.log.Error("exempt pod", "workload", name, "err", err)
					}
				}
			}
		}
		for id, p := range ws.exempt {
			if _, _, ok := ex.Match(id, p.uid); ok {
				continue
			}
			delete(ws.exempt, id)
			if ws.releasing {
				continue
			}
			if ok, err := e.blockPodLocked(ws, p, id, ws.expires, ex); err != nil {
				e.log.Error("block pod after its exemption ended", "workload", name, "pod_uid", p.uid, "err", err)
			} else if ok {
				e.log.Info("exemption ended, pod blocked again", "workload", name, "pod_uid", p.uid)
			}
		}
	}
}

// adoptLocked reconciles with entries written by others (fanoutctl node) and removes expired ones.
func (e *Enforcer) adoptLocked(now uint64) {
	entries, err := e.maps.List()
	if err != nil {
		e.log.Error("list block list", "err", err)
		return
	}
	for id, en := range entries {
		if !en.Active(now) {
			if err := e.maps.Delete(id); err == nil {
				e.log.Info("expired block entry removed", "cgroup_id", id)
			}
			continue
		}
		if _, ok := e.names[id]; !ok {
			e.names[id] = e.labelFor(id, en)
		}
	}
}

func (e *Enforcer) labelFor(id uint64, en blockmap.Entry) string {
	if p := e.known[id]; p != nil && p.workload != "" {
		return p.workload
	}
	for name := range e.workloads {
		if blockmap.WorkloadHash(name) == en.WorkloadHash {
			return name
		}
	}
	return fmt.Sprintf("Unknown//cgroup-%d", id)
}
