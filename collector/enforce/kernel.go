package enforce

import (
	"context"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

// The state machine (Enforcer) reaches the node only through the interfaces below, bundled in a host: the real one
// (newHost: pinned bpffs maps, BPF programs, cgroupfs, sock_diag, CLOCK_BOOTTIME) or an in-memory fake in tests.

// blockList is the pinned block list read by the enforce programs (blocked map, keyed by pod cgroup id).
type blockList interface {
	Put(cgroupID uint64, e blockmap.Entry) error
	Delete(cgroupID uint64) error
	List() (map[uint64]blockmap.Entry, error)
	// Compact clears the kernel's fast-path flag when the list is empty.
	Compact() (bool, error)
}

// workloadStore holds the pinned per-workload directives (blocked_workloads), what a restarted agent restores.
type workloadStore interface {
	PutWorkload(workload string, r blockmap.WorkloadRecord) error
	DeleteWorkload(workload string) error
	ListWorkloads() (map[string]blockmap.WorkloadRecord, error)
}

// exemptStore holds the pinned break-glass exemptions (blocked_exempt), written by `fanoutctl node unblock`.
type exemptStore interface {
	ListExempt() (map[uint64]blockmap.Exemption, error)
	PutExempt(cgroupID uint64, x blockmap.Exemption) error
	DeleteExempt(cgroupID uint64) error
	// PruneExempt deletes the exemptions expired at boot time now and returns the ones still active.
	PruneExempt(now uint64) (active, expired map[uint64]blockmap.Exemption, err error)
}

// blockMaps is the kill switch's pinned state; *blockmap.Maps implements it.
type blockMaps interface {
	blockList
	workloadStore
	exemptStore
}

// clock reads the node's clocks.
type clock interface {
	// BootNow is CLOCK_BOOTTIME in nanoseconds: the clock of the kernel-side expiry (bpf_ktime_get_boot_ns).
	BootNow() uint64
	// Now is the wall clock, against which fleet-wide release ramps are placed.
	Now() time.Time
}

// podTree is the node's pods cgroup tree.
type podTree interface {
	// Scan lists the pod-level cgroups below the pods cgroup.
	Scan() []podDir
	// Exists reports whether the pod cgroup at path is still there (false only when it is known to be gone).
	Exists(path string) bool
	// SubtreeIDs returns the cgroup ids of the pod cgroup at path and of every cgroup below it (its containers).
	SubtreeIDs(path string) ([]uint64, error)
}

// socketDestroyer tears down established sockets (sock_diag SOCK_DESTROY); it returns how many it destroyed per
// socket cgroup id.
type socketDestroyer interface {
	Destroy(ctx context.Context, f sockdestroy.Filter) (map[uint64]int, error)
}

// deniedCounters reads the enforce programs' per-cgroup count of denied connects.
type deniedCounters interface {
	Denied() (map[uint64]uint64, error)
}

// host is everything the Enforcer reads from and writes to outside its own memory.
type host struct {
	maps    blockMaps
	clock   clock
	tree    podTree
	sockets socketDestroyer
	denied  deniedCounters
	// selfPod is the UID of the agent's own pod ("" outside a pod): never blocked.
	selfPod string
	// close releases the host's handles (nil: nothing to release). The pins stay.
	close func() error
}
