package probe

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/pindir"
)

// Config configures a Probe.
type Config struct {
	// PinDir is the agent instance's pin dir (/sys/fs/bpf/fanout/<instance>). Maps are pinned there by name and
	// links as link_<name>. Required.
	PinDir string
	// CgroupPath is the cgroup2 directory to attach at (the node's pods cgroup). Empty: load and pin maps without
	// attaching (BPF unit tests, benchmarks).
	CgroupPath string
	// MaxCgroups bounds traffic_counters and api_health (0 = the object's default, 16384; see SizeForPods).
	// Changing it replaces the pinned maps.
	MaxCgroups uint32
	// APISlots sizes the per-socket design's cgroup slots (0 = DefaultAPISlots; at most 16384): cgroups with API
	// sockets beyond APISlots-1 are counted correctly, with two hash lookups per response instead of array lookups.
	// Changing it replaces the pinned slot maps.
	APISlots uint32
	// Mode picks the design: ModeAuto (default: per-socket when the kernel supports it, else cgroup_skb),
	// ModeSockops or ModeSKB.
	Mode Mode
	// HandoffQuiet: after an upgrade from the cgroup_skb design, its links stay attached (counting only API sockets
	// opened before the upgrade) until they have counted nothing for this long (0 = 10 min).
	HandoffQuiet time.Duration
}

// Mode is the probe's design.
type Mode string

const (
	ModeAuto    Mode = "auto"
	ModeSockops Mode = "sockops"    // per-socket callbacks of API sockets only (bpf/sockops.bpf.c)
	ModeSKB     Mode = "cgroup_skb" // every packet through cgroup_skb (bpf/traffic.bpf.c), the fallback
)

// ParseMode parses a --probe.mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeSockops, ModeSKB:
		return m, nil
	}
	return "", fmt.Errorf("probe mode %q: want auto, sockops or cgroup_skb", s)
}

// Pin names of the probe's links, relative to the pin dir.
const (
	pinEgress   = pindir.LinkTrafficEgress
	pinIngress  = pindir.LinkTrafficIngress
	pinConnect4 = pindir.LinkTrafficConnect4
	pinConnect6 = pindir.LinkTrafficConnect6
	pinSockops  = pindir.LinkTrafficSockops
)

var linkPins = pindir.TrafficLinks

// Maps the probe owns (pinned by name). blocked and blocked_active are shared with collector/enforce, which owns
// their lifecycle.
var ownMapPins = pindir.TrafficMaps

// Probe is a loaded (and optionally attached) traffic probe.
type Probe struct {
	cfg   Config
	log   *slog.Logger
	objs  bpf.TrafficObjects
	sock  *bpf.SockopsObjects // nil in ModeSKB
	mode  Mode
	links map[string]link.Link
	// oneRunPerRequest: the kernel passes the RTT sample to sockops (>= 6.10), so API sockets run the program about
	// once per request/response instead of on every egress packet.
	oneRunPerRequest bool

	// Handoff after an upgrade from the cgroup_skb design (ModeSockops with its links still attached).
	handoff       bool
	handoffCount  uint64
	handoffChange time.Time

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
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if cfg.HandoffQuiet == 0 {
		cfg.HandoffQuiet = 10 * time.Minute
	}
	if cfg.APISlots == 1 || cfg.APISlots > MaxAPISlots {
		return nil, fmt.Errorf("probe: %d API slots: want 0 (default %d) or 2..%d", cfg.APISlots, DefaultAPISlots, MaxAPISlots)
	}
	p := &Probe{cfg: cfg, log: logger.With("component", "probe"), links: map[string]link.Link{}}
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
	if p.cfg.Mode != ModeSKB {
		err := p.loadSockops()
		switch {
		case err == nil:
			p.mode = ModeSockops
		case p.cfg.Mode == ModeSockops:
			return err
		default:
			p.log.Warn("per-socket probe unavailable on this kernel; counting every packet with cgroup_skb", "err", err)
		}
	}
	if p.mode == "" {
		p.mode = ModeSKB
	}
	spec, err := bpf.LoadTraffic()
	if err != nil {
		return fmt.Errorf("load traffic spec: %w", err)
	}
	if err := spec.Variables["handoff"].Set(uint32(boolInt(p.mode == ModeSockops))); err != nil {
		return fmt.Errorf("set handoff: %w", err)
	}
	if err := p.loadSpec(spec, &p.objs); err != nil {
		return fmt.Errorf("load traffic objects: %w", err)
	}
	if err := p.ensureOverflow(); err != nil {
		return err
	}
	if err := p.initSlots(); err != nil {
		return err
	}
	p.log.Info("probe design", "mode", p.mode, "one_run_per_request", p.oneRunPerRequest)
	return nil
}

func (p *Probe) loadSockops() error {
	spec, err := bpf.LoadSockops()
	if err != nil {
		return fmt.Errorf("load sockops spec: %w", err)
	}
	mrtt := kernelAtLeast(6, 10)
	if err := spec.Variables["mrtt_in_rtt_cb"].Set(uint32(boolInt(mrtt))); err != nil {
		return fmt.Errorf("set mrtt_in_rtt_cb: %w", err)
	}
	p.oneRunPerRequest = mrtt
	var objs bpf.SockopsObjects
	if err := p.loadSpec(spec, &objs); err != nil {
		return fmt.Errorf("load sockops objects: %w", err)
	}
	p.sock = &objs
	return nil
}

// loadSpec loads spec into objs with the probe's map sizes, replacing incompatible pinned maps.
func (p *Probe) loadSpec(spec *ebpf.CollectionSpec, objs any) error {
	if p.cfg.MaxCgroups > 0 {
		for _, name := range []string{"traffic_counters", "api_health"} {
			if ms := spec.Maps[name]; ms != nil {
				ms.MaxEntries = p.cfg.MaxCgroups
			}
		}
	}
	if p.cfg.APISlots > 0 {
		for _, name := range slotMaps {
			if ms := spec.Maps[name]; ms != nil {
				ms.MaxEntries = p.cfg.APISlots
			}
		}
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: p.cfg.PinDir}}
	err := spec.LoadAndAssign(objs, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		if rerr := p.removeIncompatiblePins(spec); rerr != nil {
			return fmt.Errorf("replace incompatible pinned maps: %w (after %v)", rerr, err)
		}
		err = spec.LoadAndAssign(objs, opts)
	}
	return err
}

// ensureOverflow creates the overflow bucket (cgroup id 0) that the kernel counts cgroups in when a map is full.
func (p *Probe) ensureOverflow() error {
	zero := make([]bpf.TrafficCgroupTraffic, ebpf.MustPossibleCPU())
	err := p.objs.TrafficCounters.Update(uint64(OverflowCgroup), zero, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("create overflow bucket: %w", err)
	}
	if p.sock != nil {
		err := p.sock.ApiHealth.Update(uint64(OverflowCgroup), bpf.SockopsCgroupHealth{}, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("create overflow health bucket: %w", err)
		}
	}
	return nil
}

// OverflowCgroup is the key the kernel counts cgroups under when traffic_counters (or api_health) is full.
const OverflowCgroup = 0

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Mode returns the design the probe runs.
func (p *Probe) Mode() Mode { return p.mode }

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
	type want struct {
		pin  string
		typ  ebpf.AttachType
		prog *ebpf.Program
	}
	var wants []want
	if p.mode == ModeSockops {
		// Per-socket callbacks first, then the connect programs that opt new API sockets in (updated in place), so
		// no new socket goes uncounted; the cgroup_skb links of a previous layout stay for the sockets they count.
		wants = []want{
			{pinSockops, ebpf.AttachCGroupSockOps, p.sock.FanoutSockops},
			{pinConnect4, ebpf.AttachCGroupInet4Connect, p.sock.FanoutSockopsConnect4},
			{pinConnect6, ebpf.AttachCGroupInet6Connect, p.sock.FanoutSockopsConnect6},
		}
		for _, old := range []want{{pinEgress, ebpf.AttachCGroupInetEgress, p.objs.FanoutEgress},
			{pinIngress, ebpf.AttachCGroupInetIngress, p.objs.FanoutIngress}} {
			if _, err := os.Stat(filepath.Join(p.cfg.PinDir, old.pin)); err == nil {
				wants = append(wants, old)
				p.handoff = true
			}
		}
	} else {
		wants = []want{
			{pinEgress, ebpf.AttachCGroupInetEgress, p.objs.FanoutEgress},
			{pinIngress, ebpf.AttachCGroupInetIngress, p.objs.FanoutIngress},
			{pinConnect4, ebpf.AttachCGroupInet4Connect, p.objs.FanoutConnect4},
			{pinConnect6, ebpf.AttachCGroupInet6Connect, p.objs.FanoutConnect6},
		}
	}
	for _, w := range wants {
		l, err := p.attachOne(filepath.Join(p.cfg.PinDir, w.pin), w.typ, w.prog, st.Ino)
		if err != nil {
			return fmt.Errorf("attach %s: %w", w.pin, err)
		}
		p.links[w.pin] = l
	}
	if p.mode == ModeSKB {
		// Downgrade: the cgroup_skb programs now count every API socket; per-socket callbacks would double count.
		if err := unpinLink(filepath.Join(p.cfg.PinDir, pinSockops)); err != nil {
			return err
		}
	}
	if p.handoff {
		p.handoffChange = time.Now()
		p.handoffCount, _ = p.stat(statHandoffPackets)
		p.log.Info("upgraded from the cgroup_skb layout: its links stay until API sockets opened before are gone",
			"quiet", p.cfg.HandoffQuiet)
	}
	return nil
}

// unpinLink detaches and unpins the link pinned at path, if any.
func unpinLink(path string) error {
	l, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("unpin %s: %w", path, err)
		}
		return nil
	}
	return errors.Join(l.Unpin(), l.Close())
}

// maintainHandoff detaches the cgroup_skb links kept after an upgrade once they have counted nothing for
// HandoffQuiet (every API socket opened before the upgrade is gone or idle).
func (p *Probe) maintainHandoff(now time.Time) {
	if !p.handoff {
		return
	}
	n, err := p.stat(statHandoffPackets)
	if err != nil {
		return
	}
	if n != p.handoffCount {
		p.handoffCount, p.handoffChange = n, now
		return
	}
	if now.Sub(p.handoffChange) < p.cfg.HandoffQuiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	var errs []error
	for _, pin := range []string{pinEgress, pinIngress} {
		if l := p.links[pin]; l != nil {
			errs = append(errs, l.Unpin(), l.Close())
			delete(p.links, pin)
		}
	}
	p.handoff = false
	p.log.Info("handoff to the per-socket probe complete: cgroup_skb links detached", "err", errors.Join(errs...))
}

// Handoff reports whether cgroup_skb links of a previous layout are still attached for older sockets.
func (p *Probe) Handoff() bool { return p.handoff }

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
	if p.sock != nil {
		errs = append(errs, p.sock.Close())
	}
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
	for _, name := range linkPins {
		errs = append(errs, unpinLink(filepath.Join(pinDir, name)))
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

// OneRunPerRequest reports whether API sockets run the sockops program about once per request/response (the
// kernel passes the RTT sample to sockops, >= 6.10) rather than on every egress packet.
func (p *Probe) OneRunPerRequest() bool { return p.oneRunPerRequest }

// SockopsObjects exposes the per-socket design's objects (nil in ModeSKB).
func (p *Probe) SockopsObjects() *bpf.SockopsObjects { return p.sock }
