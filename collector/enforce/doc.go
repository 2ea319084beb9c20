// Package enforce is the node side of the kill switch. It owns the enforce BPF programs (bpf/enforce.bpf.c:
// cgroup/connect4|6 deny with EPERM, attached at the node's pods cgroup through BPF links pinned under the instance
// pin dir, so enforcement outlives the agent) and applies per-workload directives to the pinned block list
// (collector/blockmap):
//
//   - Block (with a TTL, renewed by repeating it): every pod cgroup of the workload on this node is blocked, and its
//     established connections to the API server are torn down (collector/sockdestroy). Kernel-side expiry makes the
//     TTL hold even with the agent dead; an agent that lost its aggregator keeps enforcing until then (fail-static).
//   - Release (with a ramp): the workload's pods are re-admitted in steps with jitter, not as a herd.
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
// Enforcer is also a prometheus.Collector for the fanout_agent_{blocks_active,connects_denied_total,
// sockets_destroyed_total,block_refused_total} metrics.
package enforce
