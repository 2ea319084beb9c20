package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/fanoutdev/fanout/api/protect"
	"github.com/fanoutdev/fanout/collector/blockmap"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

// WorkloadResolver names the workload of a pod on this node (collector/identity satisfies it through WorkloadFunc).
type WorkloadResolver interface {
	WorkloadOf(podUID string) (workload string, ok bool)
}

// WorkloadFunc adapts a function to WorkloadResolver.
type WorkloadFunc func(podUID string) (string, bool)

// WorkloadOf implements WorkloadResolver.
func (f WorkloadFunc) WorkloadOf(podUID string) (string, bool) { return f(podUID) }

// PriorityResolver is optionally implemented by the WorkloadResolver: pods whose priority class is
// system-node-critical or system-cluster-critical are never blocked.
type PriorityResolver interface {
	PriorityClassOf(podUID string) (class string, ok bool)
}

// Config configures the Enforcer (flags: --bpf.pin-dir, --enforce.*).
type Config struct {
	// PinDir is the instance pin dir (bpffs; mounted at /sys/fs/bpf if missing).
	PinDir string
	// PodsCgroup is the node's pods cgroup (absolute path): the enforce programs attach there and the watcher
	// watches its tree.
	PodsCgroup string
	// DefaultTTL applies to block directives without a TTL; MaxTTL caps every TTL.
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// Protected lists workload patterns that are never blocked (path.Match over `Kind/namespace/name`); nil means
	// DefaultProtected. Pods with a system-*-critical priority class and the agent's own pod are always protected.
	Protected []string
	// SweepInterval is how often TTLs, release ramps and the block list are reconciled (default 250ms).
	SweepInterval time.Duration
	// Node is this node's name: its place in every fleet-wide release ramp (api/ramp).
	Node string
	// DefaultRamp is the ramp of a release that names none (a workload that vanished from the directive sets);
	// zero = 2m in 4 steps with 5s jitter, the aggregator's defaults.
	DefaultRamp Ramp
}

func (c *Config) defaults() error {
	if c.PinDir == "" || c.PodsCgroup == "" {
		return errors.New("enforce config: pin dir and pods cgroup are required")
	}
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = 10 * time.Minute
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = time.Hour
	}
	if c.Protected == nil {
		c.Protected = DefaultProtected
	}
	if c.DefaultRamp == (Ramp{}) {
		c.DefaultRamp = Ramp{Duration: 2 * time.Minute, Steps: 4, Jitter: 5 * time.Second}
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 250 * time.Millisecond
	}
	return nil
}

// Deps are the Enforcer's collaborators.
type Deps struct {
	Workloads WorkloadResolver
	// Destinations returns the API-server endpoints whose connections are torn down on block; nil reads the pinned
	// api_endpoints map of the instance.
	Destinations func() ([]sockdestroy.Destination, error)
}

type pod struct {
	uid       string
	path      string
	workload  string
	releaseAt uint64 // boot ns; 0 = not scheduled
}

type workloadState struct {
	epoch     uint64 // trip of the block in force (0 = unknown, e.g. restored)
	expires   uint64 // boot ns; 0 = none
	releasing bool
	rampEnd   uint64
	pods      map[uint64]*pod // blocked pod cgroups of the workload
	refused   map[uint64]bool // protected pod cgroups of the workload (refused once)
	exempt    map[uint64]*pod // pod cgroups of the workload exempt by break-glass (blockmap.Exemption)
}

func newWorkloadState() *workloadState {
	return &workloadState{pods: map[uint64]*pod{}, refused: map[uint64]bool{}, exempt: map[uint64]*pod{}}
}

// Enforcer applies kill-switch directives on one node. Create with New, start with Run, feed with Apply.
type Enforcer struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	prot protector
	host // the node: pinned maps, clocks, pod cgroups, sockets (kernel.go)

	mu        sync.Mutex
	workloads map[string]*workloadState
	known     map[uint64]*pod    // every pod cgroup seen (id -> pod), for attribution and new-pod checks
	pending   map[string]podDir  // pods whose workload was unknown when their cgroup appeared
	names     map[uint64]string  // cgroup id -> workload label, kept for counter attribution
	destroyed map[string]float64 // workload -> sockets destroyed
	refused   map[[2]string]float64
	released  map[string]uint64 // workload -> last released epoch: a block of it or older is stale

	closeOnce sync.Once
}

// New loads and attaches the enforce programs (or takes over pinned ones), opens the block list and restores the
// state found in the pin dir.
func New(cfg Config, deps Deps, logger *slog.Logger) (*Enforcer, error) {
	if deps.Destinations == nil {
		pinDir := cfg.PinDir
		deps.Destinations = func() ([]sockdestroy.Destination, error) { return sockdestroy.ReadEndpoints(pinDir) }
	}
	// Settings are checked before the node is touched: a bad pattern attaches nothing.
	if _, _, err := settle(cfg, deps); err != nil {
		return nil, err
	}
	h, err := newHost(cfg, logger.With("component", "enforce"))
	if err != nil {
		return nil, fmt.Errorf("enforce: %w", err)
	}
	return newEnforcer(cfg, deps, h, logger)
}

// settle applies the defaults of cfg and checks it and deps, without touching the node.
func settle(cfg Config, deps Deps) (Config, *protect.Set, error) {
	if err := cfg.defaults(); err != nil {
		return cfg, nil, err
	}
	if deps.Workloads == nil {
		return cfg, nil, errors.New("enforce: a workload resolver is required")
	}
	if deps.Destinations == nil {
		return cfg, nil, errors.New("enforce: an API destinations source is required")
	}
	set, err := protect.Compile(cfg.Protected)
	if err != nil {
		return cfg, nil, fmt.Errorf("enforce: %w", err)
	}
	return cfg, set, nil
}

// newEnforcer builds the state machine over h and restores the state found in h's pinned maps. On error, h is
// closed.
func newEnforcer(cfg Config, deps Deps, h host, logger *slog.Logger) (_ *Enforcer, err error) {
	e := &Enforcer{deps: deps, log: logger.With("component", "enforce"), host: h,
		workloads: map[string]*workloadState{}, known: map[uint64]*pod{},
		pending: map[string]podDir{}, names: map[uint64]string{}, destroyed: map[string]float64{},
		refused: map[[2]string]float64{}, released: map[string]uint64{}}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.cfg, e.prot.set, err = settle(cfg, deps); err != nil {
		return nil, err
	}
	if err := e.restore(); err != nil {
		return nil, fmt.Errorf("enforce: restore: %w", err)
	}
	return e, nil
}

// Close releases handles. Pinned links and the block list stay: blocks keep holding until their TTL (fail-static).
// Idempotent.
func (e *Enforcer) Close() error {
	var err error
	e.closeOnce.Do(func() {
		if e.host.close != nil {
			err = e.host.close()
		}
	})
	return err
}

// Run watches the pods cgroup tree and reconciles TTLs and ramps until ctx ends. Blocks stay in force after it
// returns.
func (e *Enforcer) Run(ctx context.Context) error {
	w, err := newWatcher(e.cfg.PodsCgroup, e.podCreated, e.podRemoved)
	if err != nil {
		return fmt.Errorf("enforce: %w", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- w.run(ctx) }()
	t := time.NewTicker(e.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-errc
			return nil
		case err := <-errc:
			return fmt.Errorf("enforce: cgroup watcher: %w", err)
		case <-t.C:
			e.sweep()
		}
	}
}

// Apply executes a directive. A block of a protected workload is refused with ErrProtected.
func (e *Enforcer) Apply(d Directive) error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("apply directive: %w", err)
	}
	switch d.Action {
	case ActionBlock:
		return e.block(d)
	default:
		return e.release(d)
	}
}

// PodAdded re-checks a pod reported by the pod informer (its cgroup may have appeared before its identity).
func (e *Enforcer) PodAdded(podUID string) {
	e.mu.Lock()
	pd, ok := e.pending[podUID]
	e.mu.Unlock()
	if ok {
		e.podCreated(pd)
	}
}

func (e *Enforcer) block(d Directive) error {
	if e.prot.set.Match(d.Workload) {
		e.refuse(d.Workload, ReasonProtected, "block refused: workload is protected", "reason", d.Reason)
		return fmt.Errorf("block %s: %w", d.Workload, ErrProtected)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = e.cfg.DefaultTTL
	}
	ttl = min(ttl, e.cfg.MaxTTL)
	now := e.clock.BootNow()
	expires := blockmap.ExpiresIn(now, ttl)

	e.mu.Lock()
	if d.Epoch != 0 && d.Epoch <= e.released[d.Workload] {
		e.mu.Unlock()
		return fmt.Errorf("block %s of epoch %d after its release: %w", d.Workload, d.Epoch, ErrStale)
	}
	ws := e.workloads[d.Workload]
	if ws == nil {
		ws = newWorkloadState()
		e.workloads[d.Workload] = ws
	}
	renewal := len(ws.pods) > 0 && !ws.releasing
	ws.expires, ws.releasing, ws.rampEnd = expires, false, 0
	if d.Epoch != 0 {
		ws.epoch = d.Epoch
	}
	err := e.maps.PutWorkload(d.Workload, blockmap.WorkloadRecord{ExpiresBootNs: expires})
	ex := e.exemptions(now)
	var blocked []uint64
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, pd := range e.tree.Scan() {
		wl, ok := e.deps.Workloads.WorkloadOf(pd.uid)
		if !ok {
			e.pending[pd.uid] = pd
			continue
		}
		p := e.remember(pd, wl)
		if wl != d.Workload {
			continue
		}
		ok, err := e.blockPodLocked(ws, p, pd.id, expires, ex)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			blocked = append(blocked, pd.id)
		}
	}
	e.mu.Unlock()

	if !renewal {
		e.log.Info("workload blocked", "workload", d.Workload, "pods", len(blocked), "ttl", ttl, "reason", d.Reason)
	} else {
		e.log.Debug("workload block renewed", "workload", d.Workload, "pods", len(blocked), "ttl", ttl)
	}
	if err := e.destroySockets(d.Workload, blocked); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("block %s: %w", d.Workload, errors.Join(errs...))
	}
	return nil
}

// blockPodLocked puts one pod cgroup of ws in the block list unless the pod itself is protected (refused and
// counted once per pod) or exempt by break-glass (ex). Returns whether the pod is blocked.
func (e *Enforcer) blockPodLocked(ws *workloadState, p *pod, id uint64, expires uint64, ex blockmap.ExemptSet) (bool, error) {
	if key, x, ok := ex.Match(id, p.uid); ok {
		return false, e.exemptPodLocked(ws, p, id, key, x)
	}
	if reason := e.podProtected(p.uid); reason != "" {
		if !ws.refused[id] {
			ws.refused[id] = true
			e.refuseLocked(p.workload, reason, "block of pod refused", "pod_uid", p.uid)
		}
		return false, nil
	}
	if err := e.maps.Put(id, blockmap.Entry{ExpiresBootNs: expires, WorkloadHash: blockmap.WorkloadHash(p.workload)}); err != nil {
		return false, err
	}
	p.releaseAt = 0
	ws.pods[id] = p
	delete(ws.exempt, id)
	return true, nil
}

// exemptPodLocked keeps a pod of ws out of the block list while its break-glass exemption x (recorded under cgroup
// id key) holds: an entry left for it (written before the exemption, or by a directive racing `fanoutctl node
// unblock`) is removed, and an exemption that does not name the pod's workload (the pod was unblocked before any
// agent knew it) gets it, for `fanoutctl node list`.
func (e *Enforcer) exemptPodLocked(ws *workloadState, p *pod, id, key uint64, x blockmap.Exemption) error {
	delete(ws.pods, id)
	if _, seen := ws.exempt[id]; seen {
		return nil
	}
	ws.exempt[id] = p
	e.log.Info("pod exempt by break-glass, not blocked", "workload", p.workload, "pod_uid", p.uid,
		"cgroup_id", id, "exempt_for", x.Remaining(e.clock.BootNow()))
	var errs []error
	if err := e.maps.Delete(id); err != nil {
		errs = append(errs, fmt.Errorf("unblock exempt pod %s: %w", p.uid, err))
	}
	if x.Workload == "" || x.PodUID == "" {
		if x.Workload == "" {
			x.Workload = p.workload
		}
		if x.PodUID == "" {
			x.PodUID = p.uid
		}
		errs = append(errs, e.maps.PutExempt(key, x))
	}
	return errors.Join(errs...)
}

// exemptions returns the break-glass exemptions in force at now. When they cannot be read, the kill switch fails
// toward blocking (logged).
func (e *Enforcer) exemptions(now uint64) blockmap.ExemptSet {
	all, err := e.maps.ListExempt()
	if err != nil {
		e.log.Error("read break-glass exemptions", "err", err)
	}
	return blockmap.NewExemptSet(all, now)
}

func (e *Enforcer) podProtected(uid string) string {
	if uid == e.selfPod {
		return ReasonSelf
	}
	if pr, ok := e.deps.Workloads.(PriorityResolver); ok {
		if class, ok := pr.PriorityClassOf(uid); ok && criticalPriorityClasses[class] {
			return ReasonCritical
		}
	}
	return ""
}

func (e *Enforcer) remember(pd podDir, workload string) *pod {
	p := e.known[pd.id]
	if p == nil {
		p = &pod{uid: pd.uid, path: pd.path}
		e.known[pd.id] = p
	}
	p.workload = workload
	e.names[pd.id] = workload
	delete(e.pending, pd.uid)
	return p
}

// release schedules the re-admission of the workload's pods on this node at the node's place in the fleet-wide
// ramp (api/ramp): all of them at once, at Issued + the node's offset (a DaemonSet with one pod per node comes back
// over the ramp, not within the jitter).
func (e *Enforcer) release(d Directive) error {
	now := e.clock.BootNow()
	wall := e.clock.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	ws := e.workloads[d.Workload]
	if ws == nil {
		if d.Epoch > e.released[d.Workload] {
			e.released[d.Workload] = d.Epoch
		}
		e.log.Debug("release of a workload not blocked here", "workload", d.Workload)
		return nil
	}
	if d.Epoch != 0 && ws.epoch != 0 && d.Epoch < ws.epoch {
		return fmt.Errorf("release %s of epoch %d while epoch %d is blocked: %w", d.Workload, d.Epoch, ws.epoch, ErrStale)
	}
	e.released[d.Workload] = max(d.Epoch, ws.epoch, e.released[d.Workload])
	if ws.releasing {
		return nil // a ramp is under way; repeats of the release change nothing
	}
	r, wait := releaseDelay(e.cfg, d, wall)
	at := now + uint64(wait)
	for _, p := range ws.pods {
		p.releaseAt = max(at, 1)
	}
	ws.releasing, ws.rampEnd = true, at
	if err := e.maps.PutWorkload(d.Workload, blockmap.WorkloadRecord{ExpiresBootNs: ws.expires,
		RampEndBootNs: ws.rampEnd, Flags: blockmap.FlagReleasing}); err != nil {
		return fmt.Errorf("release %s: %w", d.Workload, err)
	}
	e.log.Info("workload release scheduled", "workload", d.Workload, "pods", len(ws.pods), "in",
		time.Duration(at-now), "ramp", r.Duration, "steps", r.Steps, "jitter", r.Jitter, "epoch", d.Epoch,
		"reason", d.Reason)
	e.advanceLocked(now)
	return nil
}

// podCreated handles a new pod cgroup: blocked at once when its workload is blocked.
func (e *Enforcer) podCreated(pd podDir) {
	wl, ok := e.deps.Workloads.WorkloadOf(pd.uid)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !ok {
		e.pending[pd.uid] = pd
		return
	}
	p := e.remember(pd, wl)
	ws := e.workloads[wl]
	if ws == nil || ws.releasing {
		return
	}
	if _, done := ws.pods[pd.id]; done {
		return
	}
	ok, err := e.blockPodLocked(ws, p, pd.id, ws.expires, e.exemptions(e.clock.BootNow()))
	if err != nil {
		e.log.Error("block new pod", "workload", wl, "pod_uid", pd.uid, "err", err)
		return
	}
	if !ok {
		return
	}
	e.log.Info("new pod of blocked workload blocked", "workload", wl, "pod_uid", pd.uid, "cgroup", pd.path)
}

func (e *Enforcer) podRemoved(path string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for uid, pd := range e.pending {
		if pd.path == path {
			delete(e.pending, uid)
		}
	}
	for id, p := range e.known {
		if p.path != path {
			continue
		}
		delete(e.known, id)
		delete(e.pending, p.uid)
		// A pod cgroup id is never reused: the pod's exemption goes with it.
		if err := e.maps.DeleteExempt(id); err != nil {
			e.log.Error("forget exemption of removed pod", "cgroup", path, "err", err)
		}
		if ws := e.workloads[p.workload]; ws != nil {
			delete(ws.exempt, id)
			if _, ok := ws.pods[id]; ok {
				delete(ws.pods, id)
				if err := e.maps.Delete(id); err != nil {
					e.log.Error("forget removed pod", "cgroup", path, "err", err)
				}
			}
		}
	}
}

// sweep expires TTLs, advances release ramps, retries pods of unknown identity and compacts the block list.
func (e *Enforcer) sweep() {
	now := e.clock.BootNow()
	var retry []podDir
	e.mu.Lock()
	for name, ws := range e.workloads {
		if ws.expires != 0 && now >= ws.expires {
			e.log.Info("workload block expired", "workload", name, "pods", len(ws.pods))
			e.dropWorkloadLocked(name, ws)
		}
	}
	e.advanceLocked(now)
	e.adoptLocked(now)
	e.reconcileExemptLocked(now)
	for _, pd := range e.pending {
		retry = append(retry, pd)
	}
	// A pod removed before the watcher watched its parent (found by a scan, gone before the watch was added) sends
	// no event: the sweep notices it is gone.
	var vanished []string
	for _, p := range e.known {
		if !e.tree.Exists(p.path) {
			vanished = append(vanished, p.path)
		}
	}
	if _, err := e.maps.Compact(); err != nil {
		e.log.Error("compact block list", "err", err)
	}
	e.mu.Unlock()
	for _, path := range vanished {
		e.podRemoved(path)
	}
	for _, pd := range retry {
		e.podCreated(pd)
	}
}

// advanceLocked re-admits released pods whose time has come and finishes completed ramps.
func (e *Enforcer) advanceLocked(now uint64) {
	for name, ws := range e.workloads {
		if !ws.releasing {
			continue
		}
		for id, p := range ws.pods {
			if p.releaseAt != 0 && now >= p.releaseAt {
				if err := e.maps.Delete(id); err != nil {
					e.log.Error("release pod", "workload", name, "err", err)
					continue
				}
				delete(ws.pods, id)
				e.log.Info("pod re-admitted", "workload", name, "pod_uid", p.uid, "left", len(ws.pods))
			}
		}
		if len(ws.pods) == 0 && now >= ws.rampEnd {
			e.log.Info("workload released", "workload", name)
			e.dropWorkloadLocked(name, ws)
		}
	}
}

func (e *Enforcer) dropWorkloadLocked(name string, ws *workloadState) {
	for id := range ws.pods {
		if err := e.maps.Delete(id); err != nil {
			e.log.Error("unblock pod", "workload", name, "err", err)
		}
	}
	if err := e.maps.DeleteWorkload(name); err != nil {
		e.log.Error("forget workload", "workload", name, "err", err)
	}
	delete(e.workloads, name)
}

// reconcileExemptLocked removes expired exemptions, lifts the blocks of pods exempted while the agent runs
// (`fanoutctl node unblock` deletes the entry; this keeps the workload's state and reports in line) and blocks again
// the pods of still-blocked workloads whose exemption lapsed or was cleared by `fanoutctl node block`.
func (e *Enforcer) reconcileExemptLocked(now uint64) {
	active, expired, err := e.maps.PruneExempt(now)
	if err != nil {
		e.log.Error("prune break-glass exemptions", "err", err)
		if active == nil {
			return
		}
	}
	for id, x := range expired {
		e.log.Info("break-glass exemption expired", "cgroup_id", id, "pod_uid", x.PodUID, "workload", x.Workload)
	}
	ex := blockmap.NewExemptSet(active, now)
	for name, ws := range e.workloads {
		if ex.Len() > 0 {
			for id, p := range ws.pods {
				if key, x, ok := ex.Match(id, p.uid); ok {
					if err := e.exemptPodLocked(ws, p, id, key, x); err != nil {
						e.log.Error("exempt pod", "workload", name, "err", err)
					}
				}
			}
		}
		for id, p := range ws.exempt {
			if _, _, ok := ex.Match(id, p.uid); ok {
				continue
			}
			delete(ws.exempt, id)
			if ws.releasing {
				continue
			}
			if ok, err := e.blockPodLocked(ws, p, id, ws.expires, ex); err != nil {
				e.log.Error("block pod after its exemption ended", "workload", name, "pod_uid", p.uid, "err", err)
			} else if ok {
				e.log.Info("exemption ended, pod blocked again", "workload", name, "pod_uid", p.uid)
			}
		}
	}
}

// adoptLocked reconciles with entries written by others (fanoutctl node) and removes expired ones.
func (e *Enforcer) adoptLocked(now uint64) {
	entries, err := e.maps.List()
	if err != nil {
		e.log.Error("list block list", "err", err)
		return
	}
	for id, en := range entries {
		if !en.Active(now) {
			if err := e.maps.Delete(id); err == nil {
				e.log.Info("expired block entry removed", "cgroup_id", id)
			}
			continue
		}
		if _, ok := e.names[id]; !ok {
			e.names[id] = e.labelFor(id, en)
		}
	}
}

func (e *Enforcer) labelFor(id uint64, en blockmap.Entry) string {
	if p := e.known[id]; p != nil && p.workload != "" {
		return p.workload
	}
	for name := range e.workloads {
		if blockmap.WorkloadHash(name) == en.WorkloadHash {
			return name
		}
	}
	return fmt.Sprintf("Unknown//cgroup-%d", id)
}

func (e *Enforcer) destroySockets(workload string, podIDs []uint64) error {
	if len(podIDs) == 0 {
		return nil
	}
	dests, err := e.deps.Destinations()
	if err != nil {
		return fmt.Errorf("api destinations: %w", err)
	}
	var ids []uint64
	e.mu.Lock()
	for _, id := range podIDs {
		if p := e.known[id]; p != nil {
			sub, err := e.tree.SubtreeIDs(p.path)
			if err == nil {
				ids = append(ids, sub...)
			}
		}
	}
	e.mu.Unlock()
	n, err := e.sockets.Destroy(context.Background(), sockdestroy.Filter{CgroupIDs: ids, Dests: dests})
	total := 0
	for _, c := range n {
		total += c
	}
	e.mu.Lock()
	e.destroyed[workload] += float64(total)
	e.mu.Unlock()
	if total > 0 {
		e.log.Info("api connections torn down", "workload", workload, "sockets", total)
	}
	if err != nil {
		return fmt.Errorf("destroy sockets: %w", err)
	}
	return nil
}

func (e *Enforcer) refuse(workload, reason, msg string, kv ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refuseLocked(workload, reason, msg, kv...)
}

func (e *Enforcer) refuseLocked(workload, reason, msg string, kv ...any) {
	e.refused[[2]string{workload, reason}]++
	e.log.Warn(msg, append([]any{"workload", workload, "refusal", reason}, kv...)...)
}

// restore rebuilds the in-memory state from the pinned maps: workload directives, their blocked pods, and removes
// entries that expired or whose cgroup is gone. Established API connections of restored blocked pods are torn down
// again (they may have been opened before the block reached the kernel).
func (e *Enforcer) restore() error {
	now := e.clock.BootNow()
	recs, err := e.maps.ListWorkloads()
	if err != nil {
		return err
	}
	entries, err := e.maps.List()
	if err != nil {
		return err
	}
	pods := map[uint64]podDir{}
	for _, pd := range e.tree.Scan() {
		pods[pd.id] = pd
	}
	ex := e.exemptions(now)
	e.mu.Lock()
	byHash := map[uint32]string{}
	for name, r := range recs {
		if r.ExpiresBootNs != 0 && now >= r.ExpiresBootNs {
			e.maps.DeleteWorkload(name)
			continue
		}
		ws := newWorkloadState()
		ws.expires = r.ExpiresBootNs
		if r.Flags&blockmap.FlagReleasing != 0 {
			ws.releasing, ws.rampEnd = true, r.RampEndBootNs
		}
		e.workloads[name] = ws
		byHash[blockmap.WorkloadHash(name)] = name
	}
	restored := map[string][]uint64{}
	for id, en := range entries {
		if !en.Active(now) {
			e.maps.Delete(id)
			continue
		}
		name, ok := byHash[en.WorkloadHash]
		if !ok || en.Flags&blockmap.FlagBreakGlass != 0 {
			e.names[id] = e.labelFor(id, en)
			continue // a break-glass entry (fanoutctl node): kept as is until its TTL
		}
		pd, exists := pods[id]
		if !exists {
			e.maps.Delete(id) // the pod is gone
			continue
		}
		p := e.remember(pd, name)
		ws := e.workloads[name]
		if key, x, ok := ex.Match(id, p.uid); ok {
			if err := e.exemptPodLocked(ws, p, id, key, x); err != nil {
				e.log.Error("exempt restored pod", "workload", name, "err", err)
			}
			continue
		}
		ws.pods[id] = p
		restored[name] = append(restored[name], id)
	}
	// Releasing workloads: spread the pods left over what remains of the ramp.
	for name, ws := range e.workloads {
		if !ws.releasing {
			continue
		}
		i, n := 0, len(ws.pods)
		for _, p := range ws.pods {
			i++
			p.releaseAt = now
			if ws.rampEnd > now {
				p.releaseAt = now + (ws.rampEnd-now)*uint64(i)/uint64(n)
			}
		}
		e.log.Info("release ramp resumed", "workload", name, "pods", n)
	}
	e.mu.Unlock()
	for name, ids := range restored {
		e.log.Info("block restored from pinned state", "workload", name, "pods", len(ids))
		if err := e.destroySockets(name, ids); err != nil {
			e.log.Warn("tear down restored pods' connections", "workload", name, "err", err)
		}
	}
	// Pods of blocked workloads that appeared while no agent ran.
	for _, pd := range pods {
		if _, ok := entries[pd.id]; !ok {
			e.podCreated(pd)
		}
	}
	return nil
}

// BlockedWorkload is a workload the enforcer currently holds blocked (or is releasing) on this node.
type BlockedWorkload struct {
	Workload  string
	Epoch     uint64 // trip of the block (0 = unknown, e.g. restored after a restart)
	Pods      int    // pod cgroups still blocked
	Releasing bool   // a release ramp is under way
	// Exempt counts the workload's pods on this node lifted by break-glass (`fanoutctl node unblock`): the node does
	// not fully enforce the block while it is non-zero.
	Exempt int
}

// Blocked lists the workloads blocked on this node, sorted by name: what the agent reports to the aggregators.
func (e *Enforcer) Blocked() []BlockedWorkload {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]BlockedWorkload, 0, len(e.workloads))
	for name, ws := range e.workloads {
		out = append(out, BlockedWorkload{Workload: name, Epoch: ws.epoch, Pods: len(ws.pods), Releasing: ws.releasing,
			Exempt: len(ws.exempt)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

// releaseDelay is how long after wall this node re-admits the workload of release d, and the ramp it runs: the
// directive's ramp (or Config.DefaultRamp when it names none) placed fleet-wide by the node's name (api/ramp),
// counted from d.Issued (or wall when missing or ahead of this node's clock).
func releaseDelay(cfg Config, d Directive, wall time.Time) (Ramp, time.Duration) {
	r := d.Ramp
	if r == (Ramp{}) {
		r = cfg.DefaultRamp
	}
	start := d.Issued
	if start.IsZero() || start.After(wall) {
		start = wall
	}
	return r, max(r.schedule(start).ReleaseTime(cfg.Node).Sub(wall), 0)
}
