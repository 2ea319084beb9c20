package detect

// Placement answers how many pods a workload (Kind/namespace/name) has at full placement, from the API server's
// objects (aggregator/placement): a DaemonSet's desired pods, a Deployment's or StatefulSet's replicas, an HPA's
// maxReplicas. ok is false for a workload it does not know.
type Placement interface {
	FullPlacement(workload string) (pods uint32, ok bool)
}

// SetPlacement makes the projection use p's full placement where p knows the workload; elsewhere (and with p nil)
// it falls back to what the reports say (desired pods sent by agents, the nodes reporting for a DaemonSet).
func (d *Detector) SetPlacement(p Placement) { d.placer = p }

func (d *Detector) fullPlacement(workload string) uint32 {
	if d.placer == nil {
		return 0
	}
	n, ok := d.placer.FullPlacement(workload)
	if !ok {
		return 0
	}
	return n
}
