package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

// fakeNode is an in-memory node behind every interface of kernel.go: the pinned maps, both clocks (moved only by
// advance), a pods cgroup tree, API sockets per cgroup and the denied-connect counters. It outlives the Enforcers
// built on it, as pins outlive an agent, so a second Enforcer over the same fakeNode is an agent restart.
type fakeNode struct {
	mu          sync.Mutex
	boot        uint64
	wall        time.Time
	blocked     map[uint64]blockmap.Entry
	active      bool // blocked_active: set by Put, cleared by Compact on an empty list
	workloads   map[string]blockmap.WorkloadRecord
	exempt      map[uint64]blockmap.Exemption
	capacity    int               // block list size (0 = unbounded): Put of a new cgroup beyond it fails with errFull
	pods        map[string]podDir // pod cgroups by path
	sockets     map[uint64]int    // open API sockets by cgroup id (pod cgroup or container below it)
	denied      map[uint64]uint64
	closed      int
	existsCalls int // tree.Exists lookups (each a stat of a cgroup directory on a real node)
}

// errFull is what the fake block list returns when it is full (the kernel says E2BIG).
var errFull = errors.New("block list full")

// containerOf is the cgroup id of the single container cgroup of a fake pod.
func containerOf(podID uint64) uint64 { return podID + 1_000_000 }

func newFakeNode() *fakeNode {
	return &fakeNode{boot: uint64(1000 * time.Second), wall: time.Unix(1_700_000_000, 0),
		blocked: map[uint64]blockmap.Entry{}, workloads: map[string]blockmap.WorkloadRecord{},
		exempt: map[uint64]blockmap.Exemption{}, pods: map[string]podDir{}, sockets: map[uint64]int{},
		denied: map[uint64]uint64{}}
}

// host returns the fakeNode as the Enforcer's host; selfPod is the agent's own pod UID.
func (n *fakeNode) host(selfPod string) host {
	return host{maps: n, clock: n, tree: n, sockets: n, denied: n, selfPod: selfPod, close: func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.closed++
		return nil
	}}
}

// advance moves both clocks.
func (n *fakeNode) advance(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.boot += uint64(d)
	n.wall = n.wall.Add(d)
}

// addPod creates the cgroup of pod uid (cgroup id id) with one container holding one API connection.
func (n *fakeNode) addPod(uid string, id uint64) podDir {
	n.mu.Lock()
	defer n.mu.Unlock()
	pd := podDir{uid: uid, path: "/sys/fs/cgroup/kubepods/pod" + uid, id: id}
	n.pods[pd.path] = pd
	n.sockets[containerOf(id)] = 1
	return pd
}

func (n *fakeNode) removePod(pd podDir) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pods, pd.path)
}

// entries returns a copy of the block list.
func (n *fakeNode) entries() map[uint64]blockmap.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.blocked)
}

// blockedIDs returns the cgroup ids in the block list, sorted.
func (n *fakeNode) blockedIDs() []uint64 {
	return slices.Sorted(maps.Keys(n.entries()))
}

func (n *fakeNode) record(workload string) (blockmap.WorkloadRecord, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r, ok := n.workloads[workload]
	return r, ok
}

func (n *fakeNode) exemption(id uint64) (blockmap.Exemption, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	x, ok := n.exempt[id]
	return x, ok
}

func (n *fakeNode) openSockets(id uint64) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sockets[containerOf(id)]
}

// --- blockMaps ---

func (n *fakeNode) Put(id uint64, e blockmap.Entry) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.blocked[id]; !ok && n.capacity > 0 && len(n.blocked) >= n.capacity {
		return fmt.Errorf("put blocked cgroup %d: %w", id, errFull)
	}
	n.active = true
	n.blocked[id] = e
	return nil
}

func (n *fakeNode) Delete(id uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.blocked, id)
	return nil
}

func (n *fakeNode) List() (map[uint64]blockmap.Entry, error) { return n.entries(), nil }

func (n *fakeNode) Compact() (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.blocked) == 0 {
		n.active = false
	}
	return !n.active, nil
}

func (n *fakeNode) PutWorkload(workload string, r blockmap.WorkloadRecord) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.workloads[workload] = r
	return nil
}

func (n *fakeNode) DeleteWorkload(workload string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.workloads, workload)
	return nil
}

func (n *fakeNode) ListWorkloads() (map[string]blockmap.WorkloadRecord, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.workloads), nil
}

func (n *fakeNode) ListExempt() (map[uint64]blockmap.Exemption, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.exempt), nil
}

func (n *fakeNode) PutExempt(id uint64, x blockmap.Exemption) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.exempt[id] = x
	return nil
}

func (n *fakeNode) DeleteExempt(id uint64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.exempt, id)
	return nil
}

func (n *fakeNode) PruneExempt(now uint64) (active, expired map[uint64]blockmap.Exemption, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	active, expired = map[uint64]blockmap.Exemption{}, map[uint64]blockmap.Exemption{}
	for id, x := range n.exempt {
		if x.Active(now) {
			active[id] = x
			continue
		}
		delete(n.exempt, id)
		expired[id] = x
	}
	return active, expired, nil
}

// --- clock ---

func (n *fakeNode) BootNow() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.boot
}

func (n *fakeNode) Now() time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.wall
}

// --- podTree ---

func (n *fakeNode) Scan() []podDir {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Values(n.pods))
}

func (n *fakeNode) Exists(path string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.existsCalls++
	_, ok := n.pods[path]
	return ok
}

func (n *fakeNode) SubtreeIDs(path string) ([]uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	pd, ok := n.pods[path]
	if !ok {
		return nil, fmt.Errorf("walk cgroup %s: no such directory", path)
	}
	return []uint64{pd.id, containerOf(pd.id)}, nil
}

// --- socketDestroyer, deniedCounters ---

func (n *fakeNode) Destroy(_ context.Context, f sockdestroy.Filter) (map[uint64]int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[uint64]int{}
	if len(f.Dests) == 0 {
		return out, nil
	}
	for _, id := range f.CgroupIDs {
		if c := n.sockets[id]; c > 0 {
			out[id] = c
			delete(n.sockets, id)
		}
	}
	return out, nil
}

func (n *fakeNode) Denied() (map[uint64]uint64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.denied), nil
}

// mapResolver is a map-backed WorkloadResolver and PriorityResolver.
type mapResolver struct {
	mu       sync.Mutex
	workload map[string]string
	priority map[string]string
}

func newMapResolver() *mapResolver {
	return &mapResolver{workload: map[string]string{}, priority: map[string]string{}}
}

func (r *mapResolver) set(uid, workload string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workload[uid] = workload
}

func (r *mapResolver) WorkloadOf(uid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.workload[uid]
	return w, ok
}

func (r *mapResolver) PriorityClassOf(uid string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.priority[uid]
	return p, ok
}

// fakeAPI is the API server endpoint the fake sockets are connected to.
var fakeAPI = []sockdestroy.Destination{{Addr: netip.MustParseAddr("10.96.0.1"), Port: 443}}

// startFake builds an Enforcer over n (no Run: tests drive sweep and the pod events themselves). cfg's PinDir and
// PodsCgroup are filled in; its Node defaults to "node-a".
func startFake(t *testing.T, n *fakeNode, res *mapResolver, cfg Config, selfPod string) *Enforcer {
	t.Helper()
	cfg.PinDir, cfg.PodsCgroup = "/sys/fs/bpf/fanout/test", "/sys/fs/cgroup/kubepods"
	if cfg.Node == "" {
		cfg.Node = "node-a"
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := newEnforcer(cfg, Deps{Workloads: res, Destinations: func() ([]sockdestroy.Destination, error) {
		return fakeAPI, nil
	}}, n.host(selfPod), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// blockedOf returns what Blocked reports for workload (ok false when it is not listed).
func blockedOf(e *Enforcer, workload string) (BlockedWorkload, bool) {
	for _, b := range e.Blocked() {
		if b.Workload == workload {
			return b, true
		}
	}
	return BlockedWorkload{}, false
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fakeUID returns a pod UID numbered i.
func fakeUID(i int) string { return fmt.Sprintf("%08d-0000-4000-8000-00000000000a", i) }
