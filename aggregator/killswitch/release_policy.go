package killswitch

import (
	"fmt"

	"github.com/fanoutdev/fanout/aggregator/detect"
	"github.com/fanoutdev/fanout/aggregator/fleet"
)

// No automatic release into overload: a held trip (past MinHold) is released by the timer only while the
// workload's projected return fits the headroom in force; otherwise it stays held, says why once (an alert
// decision that keeps the trip), and the reason is kept for status and metrics (HeldReason).

// tryRelease is the release policy for an automatically tripped workload past its minimum hold.
func (s *Switch) tryRelease(e *entry, w string, f *detect.Finding, r *detect.Result, out *[]Decision) {
	ok, why := s.releasable(e, f, r)
	if ok {
		if fits, hold := s.returnFits(e, r); !fits {
			ok, why = false, hold
		}
	}
	if ok {
		e.held = ""
		s.release(e, w, r.Second, why, out)
		return
	}
	if why == "" || why == e.held {
		return
	}
	first := e.held == ""
	e.held = why
	if first {
		d := Decision{Second: r.Second, Action: ActionAlert, Workload: w, Reason: "held, not releasing: " + why, From: e.state.String(),
			To: e.state.String(), Epoch: e.epoch, DryRun: s.cfg.DryRun, Evidence: e.ev}
		d.Evidence.Rule = "held"
		*out = append(*out, d)
	}
}

// returnFits says whether the workload's load at trip time, back on top of the fleet's load now, stays below
// ReleaseBelow of the headroom. Without a known headroom it cannot say, and the timer decides as before.
func (s *Switch) returnFits(e *entry, r *detect.Result) (bool, string) {
	if !r.CapacityKnown {
		return true, ""
	}
	back := fleet.Counters{Requests: e.ev.RequestsPerS, RxBytes: e.ev.RxBytesPerS}
	u := r.UtilizationWith(back)
	if u < s.cfg.ReleaseBelow {
		return true, ""
	}
	return false, fmt.Sprintf("its load at trip (%.0f req/s, %.1f MB/s) back now would put the API server at %.0f%% of its headroom (release below %.0f%%)",
		back.Requests, back.RxBytes/1e6, u*100, s.cfg.ReleaseBelow*100)
}

// HeldReason says why a tripped workload is held past its minimum hold ("" when it is not held back).
func (s *Switch) HeldReason(w string) string {
	if e := s.entries[w]; e != nil && e.state == Trip {
		return e.held
	}
	return ""
}
