package pindir

import "path/filepath"

// BPFFS is where bpffs is mounted when missing; DefaultBase holds one pin dir per agent instance.
const (
	BPFFS       = "/sys/fs/bpf"
	DefaultBase = BPFFS + "/fanout"
)

// Pinned maps (docs/interfaces.md).
const (
	// Traffic probe (bpf/traffic.bpf.c, collector/probe).
	MapTrafficCounters = "traffic_counters"
	MapTrafficStats    = "traffic_stats"
	// API-server endpoints (bpf/endpoints.h), written by collector/probe, read by the enforce program and
	// collector/sockdestroy.
	MapAPIEndpoints = "api_endpoints"
	MapAPIFilter    = "api_filter"
	// Per-socket design (bpf/sockops.bpf.c, collector/probe): endpoint health and the API sockets' storage.
	MapAPIHealth = "api_health"
	MapAPISocks  = "api_socks"
	// Per-socket design's cgroup slots (bpf/sockops.bpf.c, collector/probe).
	MapAPIFreeSlots   = "api_free_slots"
	MapAPICgroupSlots = "api_cgroup_slots"
	MapAPISlotOwner   = "api_slot_owner"
	MapAPISlotValues  = "api_slot_values"
	// Block list shared by every object (bpf/blocked.h, collector/blockmap).
	MapBlocked       = "blocked"
	MapBlockedActive = "blocked_active"
	// User-space-only kill-switch state (collector/blockmap): workload directives, break-glass exemptions and the
	// names behind workload hashes.
	MapBlockedWorkloads = "blocked_workloads"
	MapBlockedExempt    = "blocked_exempt"
	MapBlockedNames     = "blocked_names"
	// Enforce program's denial counters (bpf/enforce.bpf.c).
	MapEnforceDenied = "enforce_denied"
)

// Pinned links: they keep the programs attached while no agent runs.
const (
	LinkTrafficEgress   = "link_traffic_egress"
	LinkTrafficIngress  = "link_traffic_ingress"
	LinkTrafficConnect4 = "link_traffic_connect4"
	LinkTrafficConnect6 = "link_traffic_connect6"
	LinkTrafficSockops  = "link_traffic_sockops"
	LinkEnforceConnect4 = "enforce_connect4_link"
	LinkEnforceConnect6 = "enforce_connect6_link"
)

// Groups of pins, by owner.
var (
	TrafficLinks = []string{LinkTrafficEgress, LinkTrafficIngress, LinkTrafficConnect4, LinkTrafficConnect6, LinkTrafficSockops}
	TrafficMaps  = []string{MapTrafficCounters, MapTrafficStats, MapAPIEndpoints, MapAPIFilter, MapAPIHealth, MapAPISocks,
		MapAPIFreeSlots, MapAPICgroupSlots, MapAPISlotOwner, MapAPISlotValues}
	EnforceLinks = []string{LinkEnforceConnect4, LinkEnforceConnect6}
	// EnforceMaps are the kill switch's own maps; BlockListMaps are shared with the traffic probe.
	EnforceMaps   = []string{MapBlockedWorkloads, MapBlockedExempt, MapBlockedNames, MapEnforceDenied}
	BlockListMaps = []string{MapBlocked, MapBlockedActive}
)

// All returns every pin name an instance may hold.
func All() []string {
	var out []string
	for _, g := range [][]string{TrafficLinks, EnforceLinks, TrafficMaps, EnforceMaps, BlockListMaps} {
		out = append(out, g...)
	}
	return out
}

// ForInstance returns the default pin dir of an instance (the agent's --node.name).
func ForInstance(instance string) string { return filepath.Join(DefaultBase, instance) }
