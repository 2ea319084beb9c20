package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// mkCgroup creates a cgroup directory (and its parents).
func mkCgroup(path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return nil
}

// removeCgroupTree removes a cgroup subtree deepest-first. A cgroup can only be removed once it has no processes;
// just-exited processes may keep it busy for a moment, so EBUSY is retried for up to wait.
func removeCgroupTree(root string, wait time.Duration) error {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("walk cgroup tree %s: %w", root, err)
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	deadline := time.Now().Add(wait)
	for _, d := range dirs {
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("remove cgroup %s: %w", d, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// killCgroupTree kills every process left in a cgroup subtree via cgroup.kill (Linux 5.14+). It is the safety net
// after the per-PID stops: the subtree only ever holds processes this package started.
func killCgroupTree(root string) error {
	err := os.WriteFile(filepath.Join(root, "cgroup.kill"), []byte("1"), 0)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("kill cgroup tree %s: %w", root, err)
}
