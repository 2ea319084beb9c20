package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/fanoutdev/fanout/collector/cgroups"
	"github.com/fanoutdev/fanout/collector/identity"
	"github.com/fanoutdev/fanout/collector/metrics"
	"github.com/fanoutdev/fanout/collector/probe"
)

// CounterSource reads the kernel counters (collector/probe.Probe).
type CounterSource interface {
	ReadCounters() (map[uint64]probe.Counters, error)
	Pressure() ([]probe.MapPressure, error)
}

// CgroupPaths resolves cgroup ids to paths (collector/cgroups.Resolver).
type CgroupPaths interface {
	Path(id uint64) (string, bool)
}

// Pods resolves pod UIDs (collector/identity.Store).
type Pods interface {
	PodByUID(uid string) (identity.PodIdentity, bool)
}

// Config configures an Agent.
type Config struct {
	NodeName string
	Interval time.Duration // tick; 0 = 1 s
	// IdleForget drops cumulative per-pod totals after this long without traffic (0 = 10 min).
	IdleForget time.Duration
}

// Agent runs the tick loop.
type Agent struct {
	cfg   Config
	log   *slog.Logger
	src   CounterSource
	paths CgroupPaths
	pods  Pods
	out   chan Snapshot

	mu       sync.Mutex
	seq      uint64
	prev     map[uint64]probe.Counters
	prevTime time.Time
	podTotal map[string]*podTotal
	wlTotal  map[string]*Counts
	unknown  int
	lastOK   time.Time
}

// LastTick returns when counters were last read successfully (zero before the first read).
func (a *Agent) LastTick() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastOK
}

type podTotal struct {
	PodDelta
	last time.Time
}

// New returns an agent. The snapshot channel holds the 16 most recent snapshots; older ones are dropped when the
// consumer lags.
func New(cfg Config, src CounterSource, paths CgroupPaths, pods Pods, logger *slog.Logger) *Agent {
	if cfg.Interval == 0 {
		cfg.Interval = time.Second
	}
	if cfg.IdleForget == 0 {
		cfg.IdleForget = 10 * time.Minute
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Agent{cfg: cfg, log: logger.With("component", "agent"), src: src, paths: paths, pods: pods,
		out: make(chan Snapshot, 16), podTotal: map[string]*podTotal{}, wlTotal: map[string]*Counts{}}
}

// Snapshots delivers one Snapshot per tick (after the first, which only takes the baseline).
func (a *Agent) Snapshots() <-chan Snapshot { return a.out }

// Run ticks until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	if _, err := a.Tick(time.Now()); err != nil {
		a.log.Warn("tick", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			snap, err := a.Tick(now)
			if err != nil {
				a.log.Warn("tick", "err", err)
				continue
			}
			if snap != nil {
				a.publish(*snap)
			}
		}
	}
}

func (a *Agent) publish(s Snapshot) {
	for {
		select {
		case a.out <- s:
			return
		default:
		}
		select { // full: drop the oldest
		case <-a.out:
		default:
		}
	}
}

// Tick reads the counters once and returns the snapshot of deltas since the previous tick (nil on the first tick,
// which takes the baseline: pinned counters survive agent restarts and must not be reported again).
func (a *Agent) Tick(now time.Time) (*Snapshot, error) {
	cur, err := a.src.ReadCounters()
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, prevTime := a.prev, a.prevTime
	a.lastOK = now
	a.prev, a.prevTime = cur, now
	if prev == nil {
		return nil, nil
	}
	a.seq++
	snap := &Snapshot{Node: a.cfg.NodeName, Seq: a.seq, Time: now, Interval: now.Sub(prevTime)}
	pods := map[string]*PodDelta{}
	wls := map[string]*WorkloadDelta{}
	unknown := 0
	for id, c := range cur {
		d := c.Sub(prev[id]) // a new id (or an LRU-recreated one) counts from zero
		cnt := Counts{Connects: d.Connects, Requests: d.TxSegments, TxBytes: d.TxBytes, RxBytes: d.RxBytes,
			Packets: d.TxPackets + d.RxPackets}
		pod, workload, known := a.attribute(id)
		if !known {
			unknown++
		}
		if cnt.IsZero() {
			continue
		}
		if pod != nil {
			pd := pods[pod.UID]
			if pd == nil {
				pd = &PodDelta{UID: pod.UID, Namespace: pod.Namespace, Pod: pod.Pod, Workload: pod.Workload}
				pods[pod.UID] = pd
			}
			pd.Counts.add(cnt)
		}
		wd := wls[workload]
		if wd == nil {
			wd = &WorkloadDelta{Workload: workload}
			wls[workload] = wd
		}
		wd.Counts.add(cnt)
	}
	for _, pd := range pods {
		wls[pd.Workload].Pods++
		snap.Pods = append(snap.Pods, *pd)
		t := a.podTotal[pd.UID]
		if t == nil {
			t = &podTotal{PodDelta: PodDelta{UID: pd.UID, Namespace: pd.Namespace, Pod: pd.Pod, Workload: pd.Workload}}
			a.podTotal[pd.UID] = t
		}
		t.Namespace, t.Pod, t.Workload = pd.Namespace, pd.Pod, pd.Workload // may improve from fallback to informer
		t.Counts.add(pd.Counts)
		t.last = now
	}
	for _, wd := range wls {
		snap.Workloads = append(snap.Workloads, *wd)
		t := a.wlTotal[wd.Workload]
		if t == nil {
			t = &Counts{}
			a.wlTotal[wd.Workload] = t
		}
		t.add(wd.Counts)
	}
	for uid, t := range a.podTotal {
		if now.Sub(t.last) > a.cfg.IdleForget {
			delete(a.podTotal, uid)
		}
	}
	a.unknown = unknown
	sort.Slice(snap.Pods, func(i, j int) bool { return snap.Pods[i].UID < snap.Pods[j].UID })
	sort.Slice(snap.Workloads, func(i, j int) bool { return snap.Workloads[i].Workload < snap.Workloads[j].Workload })
	return snap, nil
}

// attribute maps a cgroup id to its pod (nil for host processes) and workload; known is false for cgroups that
// resolve to neither a pod nor a systemd unit.
func (a *Agent) attribute(id uint64) (pod *PodDelta, workload string, known bool) {
	path, ok := a.paths.Path(id)
	if !ok {
		return nil, identity.UnknownWorkload(id), false
	}
	info := cgroups.Parse(path)
	switch {
	case info.InPod():
		if pi, ok := a.pods.PodByUID(info.PodUID); ok {
			return &PodDelta{UID: pi.UID, Namespace: pi.Namespace, Pod: pi.Name, Workload: pi.Workload}, pi.Workload, true
		}
		// A pod cgroup without identity (yet): keep the UID so the series is not lost.
		w := identity.UnknownWorkload(id)
		return &PodDelta{UID: info.PodUID, Pod: info.PodUID, Workload: w}, w, false
	case info.SystemdUnit != "":
		return nil, identity.SystemdUnitWorkload(info.SystemdUnit), true
	}
	return nil, identity.UnknownWorkload(id), false
}

// MetricsState implements metrics.Source: cumulative totals since the agent started, and map pressure.
func (a *Agent) MetricsState(context.Context) (metrics.State, error) {
	pressure, err := a.src.Pressure()
	if err != nil {
		return metrics.State{}, fmt.Errorf("map pressure: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var st metrics.State
	for _, t := range a.podTotal {
		st.Pods = append(st.Pods, metrics.PodCounters{UID: t.UID, Namespace: t.Namespace, Pod: t.Pod, Workload: t.Workload,
			Connects: t.Connects, Requests: t.Requests, TxBytes: t.TxBytes, RxBytes: t.RxBytes, Packets: t.Packets})
	}
	for w, t := range a.wlTotal {
		st.Workloads = append(st.Workloads, metrics.WorkloadCounters{Workload: w, Connects: t.Connects,
			Requests: t.Requests, TxBytes: t.TxBytes, RxBytes: t.RxBytes})
	}
	for _, p := range pressure {
		st.Maps = append(st.Maps, metrics.MapStats{Name: p.Map, Entries: uint64(p.Entries),
			MaxEntries: uint64(p.MaxEntries), FullTotal: p.Full})
	}
	st.UnknownCgroups = a.unknown
	return st, nil
}
