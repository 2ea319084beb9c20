package engine

import "github.com/fanoutdev/fanout/aggregator/detect"

// SetPlacement gives the detector the API server's full placement of workloads (aggregator/placement); nil: the
// reports' own view.
func (e *Engine) SetPlacement(p detect.Placement) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.det.SetPlacement(p)
}
