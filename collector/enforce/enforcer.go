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
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

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
	sweeps    uint64            // sweeps run (the full vanished-pod check runs every fullCheckEvery)

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
