// Package killswitch is the per-workload state machine observe -> alert -> trip -> releasing -> released, driven once
// per closed second by the detector's findings. It applies the policy: how long a condition must hold, protected
// workloads, dry-run, a cap on concurrent trips, a minimum hold, and a gradual release ramp. Every transition that
// matters is a Decision carrying its evidence; the active trips form the directive set sent to agents. Decisions
// depend only on the findings and the window second, so replicas fed the same reports decide the same (epochs are
// window seconds).
package killswitch
