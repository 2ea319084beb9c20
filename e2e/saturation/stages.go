package saturation

import (
	"errors"
	"time"
)

// SLO is the unrelated client's GET p99 past which the API server counts as saturated.
const SLO = time.Second

// Stage is one step of the ramp: Clients concurrent LIST loops, what the unrelated GET saw, and the load the kernel
// measured (fanout's fleet rates of the LIST workload, mean over the stage).
type Stage struct {
	Clients        int
	GetP99         time.Duration
	Requests       float64 // kernel-measured requests/s
	RxBytes        float64 // kernel-measured response bytes/s
	EstRequests    float64 // the aggregator's capacity estimate (requests/s) at the end of the stage, 0 = none
	EstRxBytes     float64 // the same in response bytes/s
	EstUtilization float64 // the aggregator's utilization at the end of the stage, 0 = none
}

// Saturation returns the first stage whose GET p99 passed the SLO. The load a stage measured is taken as the
// saturation load (the previous stage stayed within the SLO).
func Saturation(stages []Stage) (Stage, error) {
	for i, s := range stages {
		if s.GetP99 > SLO {
			if i == 0 {
				return s, errors.New("the first stage already breached the SLO: start the ramp lower")
			}
			return s, nil
		}
	}
	return Stage{}, errors.New("the ramp never breached the SLO: add clients")
}

// Peak returns the most load (requests/s, response bytes/s) any stage up to and including the first breach served.
// A server pushed past its saturation may serve less than its plateau (LISTs that time out are work thrown away), so
// the load at the breach and this peak bound the measured saturation load from both sides.
func Peak(stages []Stage) (requests, rxBytes float64) {
	for _, s := range stages {
		requests, rxBytes = max(requests, s.Requests), max(rxBytes, s.RxBytes)
		if s.GetP99 > SLO {
			break
		}
	}
	return requests, rxBytes
}

// WithinBand reports whether est is within frac of the band [lo, hi] of measured loads (0.3 = from 30% below lo to
// 30% above hi).
func WithinBand(est, lo, hi, frac float64) bool {
	return lo > 0 && hi >= lo && est >= lo*(1-frac) && est <= hi*(1+frac)
}

// Within reports whether est is within frac (0.3 = +-30%) of measured.
func Within(est, measured, frac float64) bool {
	return measured > 0 && est >= measured*(1-frac) && est <= measured*(1+frac)
}
