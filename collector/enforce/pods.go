package enforce

import (
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/fanoutdev/fanout/collector/cgroups"
)

// podDir is a pod-level cgroup directory.
type podDir struct {
	uid  string
	path string
	id   uint64
}

// maxScanDepth bounds the walk below the pods root (root/qos/pod is depth 2; systemd nesting adds one).
const maxScanDepth = 4

// podUIDOf returns the pod UID when path is a pod-level cgroup (not a container below it).
func podUIDOf(path string) (string, bool) {
	info := cgroups.Parse(path)
	if info.PodUID == "" || info.ContainerID != "" {
		return "", false
	}
	return info.PodUID, true
}

// scanPods lists the pod-level cgroups below root. Directories that vanish during the walk are skipped.
func scanPods(root string) []podDir {
	var out []podDir
	root = filepath.Clean(root)
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if uid, ok := podUIDOf(path); ok {
			if id, err := cgroups.ID(path); err == nil {
				out = append(out, podDir{uid: uid, path: path, id: id})
			}
			return fs.SkipDir
		}
		if path != root && strings.Count(strings.TrimPrefix(path, root), "/") >= maxScanDepth {
			return fs.SkipDir
		}
		return nil
	})
	return out
}
