// Package blockmap gives typed access to the kill switch's pinned block list (bpf/blocked.h: `blocked`,
// `blocked_active`), the workload directive records (`blocked_workloads`), the break-glass exemptions
// (`blocked_exempt`: pods `fanoutctl node unblock` lifted, which no directive or restart blocks again until the
// exemption's TTL or an explicit `fanoutctl node block` of the pod) and the enforce program's denial counters
// (`enforce_denied`), so that the agent, a restarted agent and `fanoutctl node` share one state. It opens pinned maps
// only and embeds no BPF programs, so the CLI can use it. Writers honour the blocked_active protocol: set the flag
// before inserting, reset it only after observing `blocked` empty (Compact).
package blockmap
