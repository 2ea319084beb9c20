// Package remediate pauses a workload durably through the Kubernetes API when a kill-switch trip has held too long,
// and undoes it exactly.
//
// What a pause changes, and why that is what stops the pods:
//   - DaemonSet: the pod template gets the nodeSelector fanout.dev/paused="true", which no node carries. The DaemonSet
//     controller deletes daemon pods on every node the template no longer fits, whatever the update strategy, so all
//     pods go away and none are recreated (k8s.io/kubernetes v1.37.2 pkg/controller/daemon/daemon_controller.go:
//     NodeShouldRunDaemonPod evaluates the template's nodeSelector; "!shouldContinueRunning && exists" deletes the
//     node's daemon pods; this runs before, and independently of, the rolling update). (Setting updateStrategy OnDelete alone would not: it only stops rolling
//     out template changes, the running pods keep running and deleted ones come back.) Undo restores the previous
//     nodeSelector, so the template hash is the original one again and the controller recreates the original pods.
//   - Deployment, StatefulSet: spec.replicas is set to 0 (a HorizontalPodAutoscaler does not scale a workload up from
//     0 replicas, so it does not fight the pause).
//
// Every pause records, in annotations on the workload itself: fanout.dev/paused (who, why: the trip reason, decision
// id and time), fanout.dev/paused-previous (the exact JSON of each changed field before the pause, keyed by its path)
// and fanout.dev/undo (how to undo: `fanoutctl undo Kind/namespace/name`). Undo restores those values exactly and
// removes the annotations. Pausing twice keeps the first record (and re-asserts the pause if someone reverted the
// field by hand). Protected workloads (a caller predicate, or the annotation fanout.dev/protected="true") are refused.
// All writes are JSON merge patches carrying metadata.resourceVersion as a precondition, retried on conflict; the
// identity needs only get and patch on the workload resources. Dry-run sends the patch as a server-side dry run, so
// it is validated (RBAC, admission) and reported but nothing is stored.
package remediate
