package enforce

import "github.com/fanoutdev/fanout/api/protect"

// DefaultProtected are the workload patterns never blocked (api/protect: the one contract shared with the
// aggregator and remediation).
var DefaultProtected = protect.Defaults

// criticalPriorityClasses are the built-in priority classes of pods a node cannot live without.
var criticalPriorityClasses = map[string]bool{"system-node-critical": true, "system-cluster-critical": true}

// Refusal reasons (label `reason` of fanout_agent_block_refused_total).
const (
	ReasonProtected = "protected"
	ReasonCritical  = "critical-priority"
	ReasonSelf      = "self"
)

type protector struct {
	set *protect.Set
}
