package pindir

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Attachment is one cgroup program to keep attached through a pinned link.
type Attachment struct {
	// Dir is the instance pin dir and Name the link's pin name in it (Link* constants).
	Dir, Name string
	// Cgroup is the cgroup2 directory to attach at.
	Cgroup  string
	Attach  ebpf.AttachType
	Program *ebpf.Program
}

// AttachOrUpdate makes sure a.Program is attached at a.Cgroup through the link pinned as a.Dir/a.Name. A pinned link
// on the same cgroup with the same attach type gets the new program swapped in atomically (no gap). Otherwise a new
// link is attached first, then the old pin (another cgroup, another type, unusable) is dropped and the new link
// pinned in its place. The caller owns the returned link (closing it keeps the pin).
func AttachOrUpdate(a Attachment, log *slog.Logger) (link.Link, error) {
	path := filepath.Join(a.Dir, a.Name)
	var st unix.Stat_t
	if err := unix.Stat(a.Cgroup, &st); err != nil {
		return nil, fmt.Errorf("stat cgroup %s: %w", a.Cgroup, err)
	}
	old, err := link.LoadPinnedLink(path, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("unusable pinned link, replacing", "link", path, "err", err)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("unpin unusable link %s: %w", path, err)
		}
		old = nil
	}
	if old != nil {
		if linkOn(old, a.Attach, st.Ino) {
			if err := old.Update(a.Program); err == nil {
				log.Debug("program replaced in pinned link", "link", path)
				return old, nil
			} else {
				log.Warn("update pinned link failed, replacing", "link", path, "err", err)
			}
		} else {
			log.Warn("pinned link is on another cgroup or hook, replacing", "link", path)
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: a.Cgroup, Attach: a.Attach, Program: a.Program})
	if err != nil {
		if old != nil {
			old.Close()
		}
		return nil, fmt.Errorf("attach to cgroup %s: %w", a.Cgroup, err)
	}
	if old != nil {
		if err := old.Unpin(); err != nil {
			log.Warn("unpin old link", "link", path, "err", err)
		}
		old.Close()
	}
	if err := l.Pin(path); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link %s: %w", path, err)
	}
	log.Info("program attached", "cgroup", a.Cgroup, "link", path)
	return l, nil
}

func linkOn(l link.Link, typ ebpf.AttachType, cgroupID uint64) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	cg := info.Cgroup()
	return cg != nil && cg.CgroupId == cgroupID && uint32(cg.AttachType) == uint32(typ)
}
