package enforce

import (
	"fmt"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
)

// release schedules the re-admission of the workload's pods on this node at the node's place in the fleet-wide
// ramp (api/ramp): all of them at once, at Issued + the node's offset (a DaemonSet with one pod per node comes back
// over the ramp, not within the jitter).
func (e *Enforcer) release(d Directive) error {
	now := e.clock.BootNow()
	wall := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.workloads[d.Workload]
	if ws == nil {
		if d.Epoch > e.released[d.Workload] {
			e.released[d.Workload] = d.Epoch
		}
		e.log.Debug("release of a workload not blocked here", "workload", d.Workload)
		return nil
	}
	if d.Epoch != 0 && ws.epoch != 0 && d.Epoch < ws.epoch {
		return fmt.Errorf("release %s of epoch %d while epoch %d is blocked: %w", d.Workload, d.Epoch, ws.epoch, ErrStale)
	}
	e.released[d.Workload] = max(d.Epoch, ws.epoch, e.released[d.Workload])
	if ws.releasing {
		return nil // a ramp is under way; repeats of the release change nothing
	}
	r, wait := releaseDelay(e.cfg, d, wall)
	at := now + uint64(wait)
	for _, p := range ws.pods {
		p.releaseAt = max(at, 1)
	}
	ws.releasing, ws.rampEnd = true, at
	if err := e.maps.PutWorkload(d.Workload, blockmap.WorkloadRecord{ExpiresBootNs: ws.expires,
		RampEndBootNs: ws.rampEnd, Flags: blockmap.FlagReleasing, Epoch: blockmap.EpochOf(e.released[d.Workload])}); err != nil {
		return fmt.Errorf("release %s: %w", d.Workload, err)
	}
	e.log.Info("workload release scheduled", "workload", d.Workload, "pods", len(ws.pods), "in",
		time.Duration(at-now), "ramp", r.Duration, "steps", r.Steps, "jitter", r.Jitter, "epoch", d.Epoch,
		"reason", d.Reason)
	e.advanceLocked(now)
	return nil
}

// advanceLocked re-admits released pods whose time has come and finishes completed ramps.
func (e *Enforcer) advanceLocked(now uint64) {
	for name, ws := range e.workloads {
		if !ws.releasing {
			continue
		}
		for id, p := range ws.pods {
			if p.releaseAt != 0 && now >= p.releaseAt {
				if err := e.maps.Delete(id); err != nil {
					e.log.Error("release pod", "workload", name, "err", err)
					continue
				}
				delete(ws.pods, id)
				e.log.Info("pod re-admitted", "workload", name, "pod_uid", p.uid, "left", len(ws.pods))
			}
		}
		if len(ws.pods) == 0 && now >= ws.rampEnd {
			e.log.Info("workload released", "workload", name)
			e.dropWorkloadLocked(name, ws)
		}
	}
}

// releaseDelay is how long after wall this node re-admits the workload of release d, and the ramp it runs: the
// directive's ramp (or Config.DefaultRamp when it names none) placed fleet-wide by the node's name (api/ramp),
// counted from d.Issued (or wall when missing or ahead of this node's clock).
func releaseDelay(cfg Config, d Directive, wall time.Time) (Ramp, time.Duration) {
	r := d.Ramp
	if r == (Ramp{}) {
		r = cfg.DefaultRamp
	}
	start := d.Issued
	if start.IsZero() || start.After(wall) {
		start = wall
	}
	return r, max(r.schedule(start).ReleaseTime(cfg.Node).Sub(wall), 0)
}
