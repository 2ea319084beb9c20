package enforce

import "github.com/fanoutdev/fanout/collector/cgroups"

// podDir is a pod-level cgroup directory.
type podDir struct {
	uid  string
	path string
	id   uint64
}

// podUIDOf returns the pod UID when path is a pod-level cgroup (not a container below it).
func podUIDOf(path string) (string, bool) {
	info := cgroups.Parse(path)
	if info.PodUID == "" || info.ContainerID != "" {
		return "", false
	}
	return info.PodUID, true
}
