package fleet

import "errors"

// ErrDuplicateSecond: a node reported the same second twice (a repeated report must not double its counters).
var ErrDuplicateSecond = errors.New("second already reported by this node")

// Overflow is the workload that new names go to while the table is full (Config.MaxWorkloads).
const Overflow = "Unknown//overflow"

// evictIdle frees the workloads idle past Forget (no samples, no node state, not frozen) so their IDs are reused.
// It scans at most once per closed second.
func (f *Fleet) evictIdle() {
	if f.evictScan == f.lastClosed && f.evictScanned {
		return
	}
	f.evictScan, f.evictScanned = f.lastClosed, true
	forget := int64(f.cfg.Forget.Seconds())
	for id, w := range f.workloads {
		if w == nil || w.frozen || len(w.pairs) > 0 || w.name == Overflow {
			continue
		}
		idle := (w.seen && f.lastClosed-w.lastSec > forget) || (!w.seen && f.lastClosed-w.created > forget)
		if !idle {
			continue
		}
		delete(f.wids, w.name)
		f.workloads[id] = nil
		f.free = append(f.free, WorkloadID(id))
		f.live--
	}
}

// Live returns how many workload names are held.
func (f *Fleet) Live() int { return f.live }
