package enforce

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/collector/pindir"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

// The real node behind the interfaces of kernel.go: pinned bpffs maps (collector/blockmap), the enforce programs
// (programs.go), the cgroup2 filesystem, sock_diag (collector/sockdestroy) and CLOCK_BOOTTIME.

var _ blockMaps = (*blockmap.Maps)(nil)

// newHost prepares the pin dir (bpffs mounted if missing), opens the pinned maps and loads and attaches the enforce
// programs at cfg.PodsCgroup (or takes over pinned ones).
func newHost(cfg Config, log *slog.Logger) (host, error) {
	if err := pindir.Setup(cfg.PinDir); err != nil {
		return host{}, err
	}
	self := selfPodUID()
	maps, err := blockmap.Open(cfg.PinDir)
	if err != nil {
		return host{}, err
	}
	progs, err := loadPrograms(cfg.PinDir, cfg.PodsCgroup, log)
	if err != nil {
		return host{}, errors.Join(err, maps.Close())
	}
	return host{maps: maps, clock: hostClock{}, tree: cgroupTree{root: cfg.PodsCgroup}, sockets: sockDiag{},
		denied: progs, selfPod: self, close: func() error { return errors.Join(progs.close(), maps.Close()) }}, nil
}

// Denied implements deniedCounters over the enforce program's per-CPU enforce_denied map.
func (p *programs) Denied() (map[uint64]uint64, error) {
	n, err := blockmap.SumPerCPU(p.objs.EnforceDenied)
	if err != nil {
		return nil, fmt.Errorf("read denied connects: %w", err)
	}
	return n, nil
}

// hostClock reads the node's clocks.
type hostClock struct{}

// BootNow implements clock.
func (hostClock) BootNow() uint64 {
	now, err := blockmap.BootNow()
	if err != nil {
		panic(err) // CLOCK_BOOTTIME exists on every supported kernel
	}
	return now
}

// Now implements clock.
func (hostClock) Now() time.Time { return time.Now() }

// cgroupTree is the pods cgroup tree at root on the cgroup2 filesystem.
type cgroupTree struct {
	root string
}

// maxScanDepth bounds the walk below the pods root (root/qos/pod is depth 2; systemd nesting adds one).
const maxScanDepth = 4

// Scan implements podTree: the pod-level cgroups below root. Directories that vanish during the walk are skipped.
func (t cgroupTree) Scan() []podDir {
	var out []podDir
	root := filepath.Clean(t.root)
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

// Exists implements podTree.
func (cgroupTree) Exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// SubtreeIDs implements podTree.
func (cgroupTree) SubtreeIDs(path string) ([]uint64, error) { return sockdestroy.TreeCgroupIDs(path) }

// sockDiag destroys sockets through sock_diag.
type sockDiag struct{}

// Destroy implements socketDestroyer.
func (sockDiag) Destroy(ctx context.Context, f sockdestroy.Filter) (map[uint64]int, error) {
	return sockdestroy.Destroy(ctx, f)
}

// selfPodUID returns the pod UID of the agent's own cgroup ("" outside a pod).
func selfPodUID() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return cgroups.Parse(p).PodUID
		}
	}
	return ""
}
