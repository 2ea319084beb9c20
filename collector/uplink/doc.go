// Package uplink connects a node agent to the aggregators: it turns the agent's per-second snapshots into wire
// reports (with the node's blocked set) for the report client, and hands the merged directives that come back to the
// kill-switch enforcer. It holds no state of its own beyond the epochs of the directives it applied.
package uplink
