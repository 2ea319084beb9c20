package remediate

import (
	"context"
	"encoding/json"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// kind says how one workload kind is read, patched and paused.
type kind struct {
	resource string   // for messages and RBAC hints
	path     []string // the one field a pause changes
	action   string   // Record.Action
	get      func(ctx context.Context, c kubernetes.Interface, ns, name string) (any, error)
	patch    func(ctx context.Context, c kubernetes.Interface, ns, name string, data []byte, opts metav1.PatchOptions) error
	// paused returns the field's value while paused, given its current value (decoded JSON, nil when unset).
	paused func(cur any) any
	// isPaused reports whether the current value already pauses the workload.
	isPaused func(cur any) bool
}

var kinds = map[string]kind{
	"DaemonSet": {
		resource: "daemonsets.apps",
		path:     []string{"spec", "template", "spec", "nodeSelector"},
		action:   "node-selector",
		get: func(ctx context.Context, c kubernetes.Interface, ns, name string) (any, error) {
			return c.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		patch: func(ctx context.Context, c kubernetes.Interface, ns, name string, data []byte, o metav1.PatchOptions) error {
			_, err := c.AppsV1().DaemonSets(ns).Patch(ctx, name, types.MergePatchType, data, o)
			return err
		},
		paused: func(cur any) any {
			m := map[string]any{}
			if cm, ok := cur.(map[string]any); ok {
				maps.Copy(m, cm)
			}
			m[PauseNodeSelectorKey] = PauseNodeSelectorValue
			return m
		},
		isPaused: func(cur any) bool {
			m, ok := cur.(map[string]any)
			return ok && m[PauseNodeSelectorKey] == PauseNodeSelectorValue
		},
	},
	"Deployment": scaleKind("deployments.apps",
		func(ctx context.Context, c kubernetes.Interface, ns, name string) (any, error) {
			return c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		},
		func(ctx context.Context, c kubernetes.Interface, ns, name string, data []byte, o metav1.PatchOptions) error {
			_, err := c.AppsV1().Deployments(ns).Patch(ctx, name, types.MergePatchType, data, o)
			return err
		}),
	"StatefulSet": scaleKind("statefulsets.apps",
		func(ctx context.Context, c kubernetes.Interface, ns, name string) (any, error) {
			return c.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		func(ctx context.Context, c kubernetes.Interface, ns, name string, data []byte, o metav1.PatchOptions) error {
			_, err := c.AppsV1().StatefulSets(ns).Patch(ctx, name, types.MergePatchType, data, o)
			return err
		}),
}

func scaleKind(resource string,
	get func(context.Context, kubernetes.Interface, string, string) (any, error),
	patch func(context.Context, kubernetes.Interface, string, string, []byte, metav1.PatchOptions) error,
) kind {
	return kind{
		resource: resource,
		path:     []string{"spec", "replicas"},
		action:   "scale-to-zero",
		get:      get,
		patch:    patch,
		paused:   func(any) any { return json.Number("0") },
		isPaused: func(cur any) bool { n, ok := cur.(json.Number); return ok && n.String() == "0" },
	}
}
