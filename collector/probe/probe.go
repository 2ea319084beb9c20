package probe

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/fanoutdev/fanout/bpf"
)

// Config configures a Probe.
type Config struct {
	// PinDir is the agent instance's pin dir (/sys/fs/bpf/fanout/<instance>). Maps are pinned there by name and
	// links as link_<name>. Required.
	PinDir string
	// CgroupPath is the cgroup2 directory to attach at (the node's pods cgroup). Empty: load and pin maps without
	// attaching (BPF unit tests, benchmarks).
	CgroupPath string
	// MaxCgroups bounds traffic_counters (0 = the object's default, 16384). Changing it replaces the pinned map.
	MaxCgroups uint32
}

// Pin names of the probe's links, relative to the pin dir.
var linkPins = []struct {
	name   string
	attach ebpf.AttachType
}{
	{"link_traffic_egress", ebpf.AttachCGroupInetEgress},
	{"link_traffic_ingress", ebpf.AttachCGroupInetIngress},
	{"link_traffic_connect4", ebpf.AttachCGroupInet4Connect},
	{"link_traffic_connect6", ebpf.AttachCGroupInet6Connect},
}

// Maps the probe owns (pinned by name). blocked and blocked_active are shared with collector/enforce, which owns
// their lifecycle.
var ownMapPins = []string{"traffic_counters", "traffic_stats", "api_endpoints", "api_filter"}

// Probe is a loaded (and optionally attached) traffic probe.
type Probe struct {
	cfg   Config
	log   *slog.Logger
	objs  bpf.TrafficObjects
	links []link.Link

	mu             sync.Mutex // serialises endpoint updates and Close
	closed         bool
	endpointErrors atomic.Uint64
}

// New loads the traffic probe, reusing compatible pinned maps under cfg.PinDir (replacing incompatible ones), and
// attaches it at cfg.CgroupPath, updating pinned links in place when they already exist. On error everything
// created so far is released; pins made by earlier runs stay.
func New(cfg Config, logger *slog.Logger) (*Probe, error) {
	if cfg.PinDir == "" {
		return nil, errors.New("probe: pin dir is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Probe{cfg: cfg, log: logger.With("component", "probe")}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock rlimit: %w", err)
	}
	if err := EnsurePinDir(cfg.PinDir); err != nil {
		return nil, err
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	if cfg.CgroupPath != "" {
		if err := p.attach(); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *Probe) load() error {
	spec, err := bpf.LoadTraffic()
	if err != nil {
		return fmt.Errorf("load traffic spec: %w", err)
	}
	if p.cfg.MaxCgroups > 0 {
		spec.Maps["traffic_counters"].MaxEntries = p.cfg.MaxCgroups
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: p.cfg.PinDir}}
	err = spec.LoadAndAssign(&p.objs, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		if rerr := p.removeIncompatiblePins(spec); rerr != nil {
			return fmt.Errorf("replace incompatible pinned maps: %w (after %v)", rerr, err)
		}
		err = spec.LoadAndAssign(&p.objs, opts)
	}
	if err != nil {
		return fmt.Errorf("load traffic objects: %w", err)
	}
	return nil
}

// removeIncompatiblePins unpins every pinned map whose layout differs from spec (an agent upgrade changed it).
func (p *Probe) removeIncompatiblePins(spec *ebpf.CollectionSpec) error {
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		path := filepath.Join(p.cfg.PinDir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = ms.Compatible(m)
			m.Close()
			if err == nil {
				continue
			}
		}
		p.log.Warn("replacing incompatible pinned map", "map", name, "reason", err)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("unpin %s: %w", name, err)
		}
	}
	return nil
}

func (p *Probe) attach() error {
	var st unix.Stat_t
	if err := unix.Stat(p.cfg.CgroupPath, &st); err != nil {
		return fmt.Errorf("stat cgroup %s: %w", p.cfg.CgroupPath, err)
	}
	progs := map[ebpf.AttachType]*ebpf.Program{
		ebpf.AttachCGroupInetEgress:   p.objs.FanoutEgress,
		ebpf.AttachCGroupInetIngress:  p.objs.FanoutIngress,
		ebpf.AttachCGroupInet4Connect: p.objs.FanoutConnect4,
		ebpf.AttachCGroupInet6Connect: p.objs.FanoutConnect6,
	}
	for _, lp := range linkPins {
		l, err := p.attachOne(filepath.Join(p.cfg.PinDir, lp.name), lp.attach, progs[lp.attach], st.Ino)
		if err != nil {
			return fmt.Errorf("attach %s: %w", lp.name, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// attachOne reuses the pinned link at path when it is attached to the same cgroup with the same attach type,
// swapping in prog atomically (no gap in counting or blocking). Otherwise it attaches a new link first, then
// detaches the old one and pins the new one in its place.
func (p *Probe) attachOne(path string, typ ebpf.AttachType, prog *ebpf.Program, cgroupID uint64) (link.Link, error) {
	old, err := link.LoadPinnedLink(path, nil)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("unusable pinned link, replacing", "path", path, "err", err)
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("unpin unusable link: %w", err)
		}
	}
	if old != nil {
		if linkMatches(old, typ, cgroupID) {
			if err := old.Update(prog); err == nil {
				p.log.Debug("updated pinned link", "path", path)
				return old, nil
			} else {
				p.log.Warn("update pinned link failed, replacing", "path", path, "err", err)
			}
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: p.cfg.CgroupPath, Attach: typ, Program: prog})
	if err != nil {
		if old != nil {
			old.Close()
		}
		return nil, err
	}
	if old != nil {
		if err := old.Unpin(); err != nil {
			p.log.Warn("unpin old link", "path", path, "err", err)
		}
		old.Close()
	}
	if err := l.Pin(path); err != nil {
		l.Close()
		return nil, fmt.Errorf("pin link: %w", err)
	}
	return l, nil
}

func linkMatches(l link.Link, typ ebpf.AttachType, cgroupID uint64) bool {
	info, err := l.Info()
	if err != nil {
		return false
	}
	cg := info.Cgroup()
	return cg != nil && cg.CgroupId == cgroupID && uint32(cg.AttachType) == uint32(typ)
}

// Close releases the probe's file descriptors. Pinned maps and links stay, so counting and blocking continue
// without the agent; use Uninstall to remove them. Close is idempotent.
func (p *Probe) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	errs = append(errs, p.objs.Close())
	return errors.Join(errs...)
}

// Uninstall detaches the probe's pinned links and removes its pinned maps, then closes the probe.
func (p *Probe) Uninstall() error {
	err := Uninstall(p.cfg.PinDir)
	return errors.Join(err, p.Close())
}

// Uninstall removes the traffic probe's pins from pinDir (detaching its links) without a loaded Probe. Pins of
// other fanout objects (blocked, blocked_active, enforce links) are left alone; the dir is removed when empty.
func Uninstall(pinDir string) error {
	var errs []error
	for _, lp := range linkPins {
		path := filepath.Join(pinDir, lp.name)
		l, err := link.LoadPinnedLink(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, os.Remove(path))
			continue
		}
		errs = append(errs, l.Unpin(), l.Close())
	}
	for _, name := range ownMapPins {
		if err := os.Remove(filepath.Join(pinDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin %s: %w", name, err))
		}
	}
	if err := os.Remove(pinDir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
		errs = append(errs, fmt.Errorf("remove pin dir: %w", err))
	}
	return errors.Join(errs...)
}

// Objects exposes the loaded maps and programs (tests, benchmarks and the enforcement package's shared maps).
func (p *Probe) Objects() *bpf.TrafficObjects { return &p.objs }
