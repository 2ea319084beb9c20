package blockmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/fanoutdev/fanout/collector/pindir"
)

// Sizes mirrored from the C headers.
const (
	MaxBlocked   = 16384 // FANOUT_MAX_BLOCKED
	MaxWorkloads = 1024
	// MaxWorkloadName bounds a workload name stored in blocked_workloads (Kind/namespace/name fits: 63+253+kind).
	MaxWorkloadName = 384
)

func blockedSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: pindir.MapBlocked, Type: ebpf.Hash, KeySize: 8, ValueSize: 16,
		MaxEntries: MaxBlocked, Pinning: ebpf.PinByName}
}

func activeSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: pindir.MapBlockedActive, Type: ebpf.Array, KeySize: 4, ValueSize: 4,
		MaxEntries: 1, Pinning: ebpf.PinByName}
}

func workloadsSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: pindir.MapBlockedWorkloads, Type: ebpf.Hash, KeySize: MaxWorkloadName, ValueSize: 24,
		MaxEntries: MaxWorkloads, Pinning: ebpf.PinByName}
}

// Maps is the opened block list of one agent instance. Safe for concurrent use by one process; several processes
// (agent, `fanoutctl node`) may hold it at once: every operation is a single map syscall except Compact.
type Maps struct {
	pinDir    string
	blocked   *ebpf.Map
	active    *ebpf.Map
	workloads *ebpf.Map
	exempt    *ebpf.Map

	mu     sync.Mutex
	closed bool
}

// Open opens the pinned block-list maps under pinDir, creating and pinning any that are absent (with the specs of
// bpf/blocked.h, so BPF objects loaded later share them). pinDir must be on a bpffs; it is created if missing.
func Open(pinDir string) (*Maps, error) {
	if err := os.MkdirAll(pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir %s: %w", pinDir, err)
	}
	m := &Maps{pinDir: pinDir}
	var err error
	if m.blocked, err = openOrCreate(pinDir, blockedSpec()); err != nil {
		return nil, err
	}
	if m.active, err = openOrCreate(pinDir, activeSpec()); err != nil {
		m.Close()
		return nil, err
	}
	if m.workloads, err = openOrCreate(pinDir, workloadsSpec()); err != nil {
		m.Close()
		return nil, err
	}
	if m.exempt, err = openOrCreate(pinDir, exemptSpec()); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// Exists reports whether pinDir holds a pinned `blocked` map.
func Exists(pinDir string) bool {
	_, err := os.Stat(filepath.Join(pinDir, pindir.MapBlocked))
	return err == nil
}

func openOrCreate(pinDir string, spec *ebpf.MapSpec) (*ebpf.Map, error) {
	for range 3 {
		m, err := ebpf.NewMapWithOptions(spec, ebpf.MapOptions{PinPath: pinDir})
		if err == nil {
			return m, nil
		}
		// Another process pinned the same map between our lookup and our pin: load theirs.
		if errors.Is(err, os.ErrExist) || errors.Is(err, unix.EEXIST) {
			continue
		}
		return nil, fmt.Errorf("open map %s in %s: %w", spec.Name, pinDir, err)
	}
	return nil, fmt.Errorf("open map %s in %s: pin kept racing", spec.Name, pinDir)
}

// PinDir returns the instance pin dir.
func (m *Maps) PinDir() string { return m.pinDir }

// Close releases the map handles (the pins stay). Idempotent.
func (m *Maps) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var errs []error
	for _, mp := range []*ebpf.Map{m.blocked, m.active, m.workloads, m.exempt} {
		if mp != nil {
			errs = append(errs, mp.Close())
		}
	}
	return errors.Join(errs...)
}

// Put blocks cgroupID (a pod-level cgroup id) with entry e, honouring the blocked_active protocol: the flag is set
// before the entry is inserted, so the kernel never skips a live entry.
func (m *Maps) Put(cgroupID uint64, e Entry) error {
	if err := m.setActive(1); err != nil {
		return err
	}
	if err := m.blocked.Update(cgroupID, e, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("put blocked cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// Get returns the entry of cgroupID.
func (m *Maps) Get(cgroupID uint64) (Entry, bool, error) {
	var e Entry
	err := m.blocked.Lookup(cgroupID, &e)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("lookup blocked cgroup %d: %w", cgroupID, err)
	}
	return e, true, nil
}

// Delete unblocks cgroupID. Deleting an absent entry is not an error. The active flag is left set (see Compact).
func (m *Maps) Delete(cgroupID uint64) error {
	err := m.blocked.Delete(cgroupID)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete blocked cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// List returns every entry of the block list (expired ones included; see Entry.Active).
func (m *Maps) List() (map[uint64]Entry, error) {
	out := make(map[uint64]Entry)
	var (
		k uint64
		e Entry
	)
	it := m.blocked.Iterate()
	for it.Next(&k, &e) {
		out[k] = e
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list blocked: %w", err)
	}
	return out, nil
}

// Compact clears blocked_active when the block list is empty, so that the kernel skips the ancestor walk again.
// Following the protocol of bpf/blocked.h it clears the flag only after observing the map empty, then re-checks and
// sets it again if a concurrent writer inserted meanwhile. Returns whether the flag is now clear.
func (m *Maps) Compact() (bool, error) {
	empty, err := m.empty()
	if err != nil || !empty {
		return false, err
	}
	if err := m.setActive(0); err != nil {
		return false, err
	}
	if empty, err = m.empty(); err != nil {
		return false, err
	}
	if !empty {
		return false, m.setActive(1)
	}
	return true, nil
}

// ActiveFlag returns the blocked_active value.
func (m *Maps) ActiveFlag() (bool, error) {
	var v uint32
	if err := m.active.Lookup(uint32(0), &v); err != nil {
		return false, fmt.Errorf("lookup blocked_active: %w", err)
	}
	return v != 0, nil
}

func (m *Maps) empty() (bool, error) {
	var k uint64
	err := m.blocked.NextKey(nil, &k)
	if errors.Is(err, ebpf.ErrKeyNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("scan blocked: %w", err)
	}
	return false, nil
}

func (m *Maps) setActive(v uint32) error {
	if err := m.active.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set blocked_active=%d: %w", v, err)
	}
	return nil
}
