package remediate

import (
	"errors"
	"fmt"
	"strings"
)

// Workload identifies a workload as Kind/namespace/name (docs/interfaces.md).
type Workload struct {
	Kind, Namespace, Name string
}

func (w Workload) String() string { return w.Kind + "/" + w.Namespace + "/" + w.Name }

// ErrUnsupportedKind is returned for kinds that cannot be paused (only DaemonSet, Deployment, StatefulSet can).
var ErrUnsupportedKind = errors.New("unsupported workload kind (want DaemonSet, Deployment or StatefulSet)")

// ParseWorkload parses "Kind/namespace/name".
func ParseWorkload(s string) (Workload, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return Workload{}, fmt.Errorf("parse workload %q: want Kind/namespace/name", s)
	}
	w := Workload{Kind: parts[0], Namespace: parts[1], Name: parts[2]}
	if _, ok := kinds[w.Kind]; !ok {
		return Workload{}, fmt.Errorf("parse workload %q: %w", s, ErrUnsupportedKind)
	}
	return w, nil
}
