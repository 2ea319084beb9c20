package remediate

import "time"

// Annotation keys written on a paused workload.
const (
	// AnnotationPaused holds the JSON Record: who paused it, why and when.
	AnnotationPaused = "fanout.dev/paused"
	// AnnotationPrevious holds a JSON object mapping each changed field's path (e.g. "spec.replicas") to its exact
	// JSON value before the pause (null when it was unset).
	AnnotationPrevious = "fanout.dev/paused-previous"
	// AnnotationUndo says how to undo the pause.
	AnnotationUndo = "fanout.dev/undo"
	// AnnotationProtected set to "true" on a workload makes Pause refuse it.
	AnnotationProtected = "fanout.dev/protected"
)

// PauseNodeSelectorKey/Value form the nodeSelector that keeps a paused DaemonSet's pods off every node. No node must
// carry this label.
const (
	PauseNodeSelectorKey   = "fanout.dev/paused"
	PauseNodeSelectorValue = "true"
)

// Cause is why a workload is paused: the kill-switch decision that tripped it.
type Cause struct {
	Reason     string    // the trip reason
	DecisionID string    // the decision's id (e.g. its epoch) for the audit log
	DecidedAt  time.Time // when the trip was decided
}

// Record is the JSON kept in AnnotationPaused.
type Record struct {
	By         string    `json:"by"`
	Reason     string    `json:"reason"`
	DecisionID string    `json:"decision,omitempty"`
	DecidedAt  time.Time `json:"decidedAt,omitzero"`
	PausedAt   time.Time `json:"pausedAt"`
	Action     string    `json:"action"` // "node-selector" or "scale-to-zero"
}
