// Package probe loads fanout's traffic probe, attaches it at the node's pods cgroup with BPF links, pins its maps and
// links under the agent instance's pin dir (so counting and enforcement survive agent restarts), maintains the
// API-server endpoint set and reads the per-cgroup counters, the kernel's view of API-server answers (latency
// histogram, failed connects, resets, RTOs) and map pressure.
//
// Two designs, probed at start (Mode, exported as fanout_agent_probe_mode):
//   - sockops (bpf/sockops.bpf.c, the default): only sockets opened to an API endpoint get callbacks, so other traffic
//     pays nothing. On kernels >= 6.10 (the RTT sample reaches sockops) an API socket runs the program about once per
//     request/response; counters are folded from the socket's cumulative counters, so they are exact whichever
//     callbacks ran (OneRunPerRequest). Older kernels keep egress callbacks on. A cgroup's first API connect takes
//     a slot (Config.APISlots), so its sockets fold into a per-CPU array value instead of looking up two hash maps
//     per response; cgroups without a slot are counted by id, as exactly (slots.go).
//   - cgroup_skb (bpf/traffic.bpf.c): every packet of every pod, the fallback where sockops does not load.
//
// An agent upgraded from the cgroup_skb layout keeps those links for the API sockets opened before the upgrade (they
// skip sockets that sockops counts) and detaches them once they have counted nothing for HandoffQuiet.
package probe
