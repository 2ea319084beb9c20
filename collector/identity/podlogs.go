package identity

import (
	"fmt"
	"os"
	"strings"
)

// DefaultPodLogsDir is the kubelet's pod log directory.
const DefaultPodLogsDir = "/var/log/pods"

// ParsePodLogDir parses a /var/log/pods entry name, <namespace>_<name>_<uid>. Namespaces and pod names cannot
// contain '_', so the split is unambiguous.
func ParsePodLogDir(name string) (PodIdentity, bool) {
	parts := strings.Split(name, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return PodIdentity{}, false
	}
	ns, pod, uid := parts[0], parts[1], parts[2]
	return PodIdentity{UID: uid, Namespace: ns, Name: pod, Workload: "Pod/" + ns + "/" + pod, Source: SourcePodLogs}, true
}

// scanPodLogs reads dir and returns identities by UID.
func scanPodLogs(dir string) (map[string]PodIdentity, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read pod log dir: %w", err)
	}
	out := make(map[string]PodIdentity, len(ents))
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if id, ok := ParsePodLogDir(e.Name()); ok {
			out[id.UID] = id
		}
	}
	return out, nil
}
