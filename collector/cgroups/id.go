package cgroups

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ID returns the cgroup id of a cgroup2 directory: its inode number (what bpf_skb_cgroup_id and
// bpf_get_current_cgroup_id return).
func ID(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat cgroup %s: %w", path, err)
	}
	return st.Ino, nil
}

// Resolver maps cgroup ids to cgroup paths under a root (the attach point and its descendants). It walks the tree
// on a miss, at most once per MinRescan, so a burst of unknown ids costs one walk.
type Resolver struct {
	mount string // cgroup2 mount point; paths are reported relative to it
	root  string // absolute directory walked

	// MinRescan bounds how often a miss triggers a walk of the tree.
	MinRescan time.Duration

	mu       sync.Mutex
	byID     map[uint64]string
	lastScan time.Time
	now      func() time.Time
}

// NewResolver resolves ids of cgroups at or below root, which must lie under the cgroup2 mount.
func NewResolver(mount, root string) *Resolver {
	return &Resolver{mount: filepath.Clean(mount), root: filepath.Clean(root), MinRescan: time.Second,
		byID: map[uint64]string{}, now: time.Now}
}

// Path returns the path of cgroup id relative to the cgroup2 mount ("/kubepods.slice/..."), rescanning the tree
// when the id is unknown (rate-limited by MinRescan).
func (r *Resolver) Path(id uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byID[id]; ok {
		return p, true
	}
	if !r.lastScan.IsZero() && r.now().Sub(r.lastScan) < r.MinRescan {
		return "", false
	}
	r.scanLocked()
	p, ok := r.byID[id]
	return p, ok
}

// Rescan walks the tree now, dropping ids of removed cgroups.
func (r *Resolver) Rescan() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scanLocked()
}

// Len returns the number of known cgroups.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

func (r *Resolver) scanLocked() {
	r.lastScan = r.now()
	byID := make(map[uint64]string, len(r.byID))
	_ = filepath.WalkDir(r.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == r.root {
				return err
			}
			return nil // a cgroup removed during the walk
		}
		if !d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			byID[st.Ino] = r.rel(path)
		}
		return nil
	})
	r.byID = byID
}

func (r *Resolver) rel(path string) string {
	rel, err := filepath.Rel(r.mount, path)
	if err != nil || rel == "." {
		return "/"
	}
	return "/" + rel
}
