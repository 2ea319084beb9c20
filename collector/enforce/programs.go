package enforce

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/cgroups"
)

// Pinned link names under the instance pin dir: the links keep the programs attached while no agent runs.
const (
	LinkConnect4 = "enforce_connect4_link"
	LinkConnect6 = "enforce_connect6_link"
)

// programs holds the loaded enforce object and its cgroup links.
type programs struct {
	objs  bpf.EnforceObjects
	links []link.Link
}

// loadPrograms loads bpf/enforce.bpf.c with its maps pinned by name in pinDir and makes sure connect4/connect6 are
// attached at cgroupPath through pinned links: an existing pinned link on the same cgroup is updated to the new
// programs in place (no gap in enforcement), otherwise a new link is attached and pinned.
func loadPrograms(pinDir, cgroupPath string, log *slog.Logger) (_ *programs, err error) {
	p := &programs{}
	if err := bpf.LoadEnforceObjects(&p.objs, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: pinDir}}); err != nil {
		return nil, fmt.Errorf("load enforce programs: %w", err)
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	cgID, err := cgroups.ID(cgroupPath)
	if err != nil {
		return nil, err
	}
	for _, a := range []struct {
		name   string
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{
		{LinkConnect4, p.objs.FanoutEnforceConnect4, ebpf.AttachCGroupInet4Connect},
		{LinkConnect6, p.objs.FanoutEnforceConnect6, ebpf.AttachCGroupInet6Connect},
	} {
		l, err := attachPinned(filepath.Join(pinDir, a.name), cgroupPath, cgID, a.prog, a.attach, log)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", a.name, err)
		}
		p.links = append(p.links, l)
	}
	return p, nil
}

func attachPinned(pin, cgroupPath string, cgID uint64, prog *ebpf.Program, at ebpf.AttachType,
	log *slog.Logger) (link.Link, error) {
	l, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		info, ierr := l.Info()
		if ierr == nil && info.Cgroup() != nil && info.Cgroup().CgroupId == cgID {
			if err := l.Update(prog); err != nil {
				l.Close()
				return nil, fmt.Errorf("update pinned link %s: %w", pin, err)
			}
			log.Info("enforce program replaced in pinned link", "link", pin)
			return l, nil
		}
		// A link for another cgroup (the instance moved): drop it.
		log.Warn("removing pinned enforce link of another cgroup", "link", pin)
		l.Unpin()
		l.Close()
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("load pinned link %s: %w", pin, err)
	}
	l, err = link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: at, Program: prog})
	if err != nil {
		return nil, fmt.Errorf("attach to cgroup %s: %w", cgroupPath, err)
	}
	if err := l.Pin(pin); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link %s: %w", pin, err)
	}
	log.Info("enforce program attached", "cgroup", cgroupPath, "link", pin)
	return l, nil
}

func (p *programs) close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// Uninstall detaches the enforce programs of the instance at pinDir by removing their pinned links and the kill
// switch's own maps (the shared block list stays). For decommissioning a node and for tests.
func Uninstall(pinDir string) error {
	var errs []error
	// The kill switch's own maps go too; the shared block list (blocked, blocked_active) is the agent's to remove.
	for _, name := range []string{LinkConnect4, LinkConnect6, blockmap.WorkloadsName, blockmap.DeniedName} {
		if err := os.Remove(filepath.Join(pinDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
