package enforce

import "github.com/fanoutdev/fanout/collector/cgroups"

// podDir is a pod-level cgroup directory.
type podDir struct {
	uid  string
	path string
	id   uint64
}

// podUIDOf returns the pod UID when path is a pod-level cgroup (not a container below it).
func podUIDOf(path string) (string, bool) {
	info := cgroups.Parse(path)
	if info.PodUID == "" || info.ContainerID != "" {
		return "", false
	}
	return info.PodUID, true
}

func (e *Enforcer) remember(pd podDir, workload string) *pod {
	p := e.known[pd.id]
	if p == nil {
		p = &pod{uid: pd.uid, path: pd.path}
		e.known[pd.id] = p
	}
	p.workload = workload
	e.names[pd.id] = workload
	delete(e.pending, pd.uid)
	return p
}

// podCreated handles a new pod cgroup: blocked at once when its workload is blocked.
func (e *Enforcer) podCreated(pd podDir) {
	wl, ok := e.deps.Workloads.WorkloadOf(pd.uid)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !ok {
		e.pending[pd.uid] = pd
		return
	}
	p := e.remember(pd, wl)
	ws := e.workloads[wl]
	if ws == nil || ws.releasing {
		return
	}
	if _, done := ws.pods[pd.id]; done {
		return
	}
	ok, err := e.blockPodLocked(ws, p, pd.id, ws.expires, e.exemptions(e.clock.BootNow()))
	if err != nil {
		e.log.Error("block new pod", "workload", wl, "pod_uid", pd.uid, "err", err)
		return
	}
	if !ok {
		return
	}
	e.log.Info("new pod of blocked workload blocked", "workload", wl, "pod_uid", pd.uid, "cgroup", pd.path)
}

func (e *Enforcer) podRemoved(path string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for uid, pd := range e.pending {
		if pd.path == path {
			delete(e.pending, uid)
		}
	}
	for id, p := range e.known {
		if p.path != path {
			continue
		}
		delete(e.known, id)
		delete(e.pending, p.uid)
		// A pod cgroup id is never reused: the pod's exemption goes with it.
		if err := e.maps.DeleteExempt(id); err != nil {
			e.log.Error("forget exemption of removed pod", "cgroup", path, "err", err)
		}
		if ws := e.workloads[p.workload]; ws != nil {
			delete(ws.exempt, id)
			if _, ok := ws.pods[id]; ok {
				delete(ws.pods, id)
				if err := e.maps.Delete(id); err != nil {
					e.log.Error("forget removed pod", "cgroup", path, "err", err)
				}
			}
		}
	}
}
