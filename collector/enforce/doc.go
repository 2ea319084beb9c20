// Package enforce is the node side of the kill switch. It owns the enforce BPF programs (bpf/enforce.bpf.c:
// cgroup/connect4|6 deny with EPERM, attached at the node's pods cgroup through BPF links pinned under the instance
// pin dir, so enforcement outlives the agent) and applies per-workload directives to the pinned block list
// (collector/blockmap):
//
//   - Block (with a TTL, renewed by repeating it): every pod cgroup of the workload on this node is blocked, and its
//     established connections to the API server are torn down (collector/sockdestroy). Kernel-side expiry makes the
//     TTL hold even with the agent dead; an agent that lost its aggregator keeps enforcing until then (fail-static).
//   - Release (with a fleet-wide ramp, api/ramp): this node re-admits all the workload's pods at once, at its own
//     place in the ramp (a stable hash of the node name), so the fleet comes back in steps with jitter, not as a herd.
//     A restarted agent keeps that place (the ramp end in the pinned workload record).
//   - New pods of a blocked workload are blocked as soon as their cgroup directory appears (inotify on the pods
//     cgroup tree), before their first container starts; pod add events re-check pods whose identity was unknown.
//   - Protected workloads (DNS, CNI, kube-system critical pods, fanout itself) are never blocked: refused and logged.
//   - On start, state is restored from the pinned maps and reconciled with the cgroup tree.
//   - Break-glass sticks: a pod lifted by `fanoutctl node unblock` carries an exemption in the pinned blocked_exempt
//     map (collector/blockmap). Block directives (renewals and new epochs alike), restore after a restart and the
//     new-pod check all leave it unblocked until the exemption's TTL, or until `fanoutctl node block` blocks the pod
//     explicitly (which clears the exemption); then the sweep blocks it again if its workload is still blocked.
//     Expired exemptions are removed by the sweep. Blocked reports the workload's exempt pods (Exempt).
//
// Layout: the Enforcer is a state machine (enforcer.go, block.go, release.go, pods.go, sweep.go, restore.go) that
// reaches the node only through small interfaces (kernel.go): the block list, workload records and break-glass
// exemptions (*blockmap.Maps satisfies all three), a clock (CLOCK_BOOTTIME for deadlines, wall time for ramp
// placement), the pods cgroup tree, a socket destroyer and the denied-connect counters. New wires the real node
// (host.go: bpffs maps, the enforce programs of programs.go, cgroupfs, sock_diag) and hands it to newEnforcer, which
// validates, restores and returns the state machine; Run adds the inotify watcher (watch.go) and the sweep ticker.
// The unit tests (machine_test.go) drive the state machine over an in-memory fake node (fake_test.go) and its clocks,
// without root; the privileged tests (enforce_test.go, breakglass_test.go) run New on a real kernel.
//
// Enforcer is also a prometheus.Collector for the fanout_agent_{blocks_active,connects_denied_total,
// sockets_destroyed_total,block_refused_total} metrics.
package enforce
