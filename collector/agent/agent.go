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

// HealthSource reads the kernel's per-cgroup response latency and connection outcomes (collector/probe.Probe in
// its per-socket mode; optional).
type HealthSource interface {
	ReadHealth() (map[uint64]probe.Health, error)
}

// Forgetter deletes the kernel counters of cgroups that are gone (collector/probe.Probe; optional).
type Forgetter interface {
	Forget(ids []uint64) error
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

	prevHealth map[uint64]probe.Health
	wlHealth   map[string]*healthTotal
	changed    map[uint64]time.Time // last tick each cgroup's counters moved
	lastFull   uint64               // traffic_counters insert failures seen so far
	fullLogged time.Time
}

type healthTotal struct {
	Latency  Latency
	Outcomes Outcomes
	last     time.Time
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
		out: make(chan Snapshot, 16), podTotal: map[string]*podTotal{}, wlTotal: map[string]*Counts{},
		wlHealth: map[string]*healthTotal{}, changed: map[uint64]time.Time{}}
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
	var health map[uint64]probe.Health
	if hs, ok := a.src.(HealthSource); ok {
		if health, err = hs.ReadHealth(); err != nil {
			return nil, fmt.Errorf("read latency and outcomes: %w", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, prevTime, prevHealth := a.prev, a.prevTime, a.prevHealth
	a.lastOK = now
	a.prev, a.prevTime, a.prevHealth = cur, now, health
	a.checkFull(now)
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
		a.changed[id] = now
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
	for id, h := range health {
		d := h.Sub(prevHealth[id])
		if d.IsZero() {
			continue
		}
		a.changed[id] = now
		pod, workload, _ := a.attribute(id)
		wd := wls[workload]
		if wd == nil {
			wd = &WorkloadDelta{Workload: workload}
			wls[workload] = wd
		}
		if pod != nil && pods[pod.UID] == nil { // a pod whose only activity was failing: still one of the pods
			pods[pod.UID] = pod
		}
		wd.Latency.add(d)
		wd.Outcomes.add(d)
		t := a.wlHealth[workload]
		if t == nil {
			t = &healthTotal{}
			a.wlHealth[workload] = t
		}
		t.Latency.add(d)
		t.Outcomes.add(d)
		t.last = now
	}
	for w, t := range a.wlHealth {
		if now.Sub(t.last) > a.cfg.IdleForget {
			delete(a.wlHealth, w)
		}
	}
	a.forgetGone(cur, now)
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
	if id == probe.OverflowCgroup {
		// The kernel's bucket for cgroups a full map could not hold: no cgroup has id 0, so looking it up would
		// rescan the cgroup tree every tick for nothing. Its counts are known to be the overflow's.
		return nil, identity.UnknownWorkload(id), true
	}
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

// forgetGone deletes the kernel counters of cgroups that have not moved for IdleForget and no longer resolve to a
// path (the cgroup is gone): the counter map is not LRU, so nothing else frees their entries. The overflow bucket
// stays.
func (a *Agent) forgetGone(cur map[uint64]probe.Counters, now time.Time) {
	f, ok := a.src.(Forgetter)
	if !ok {
		return
	}
	var gone []uint64
	for id := range cur {
		if id == probe.OverflowCgroup {
			continue
		}
		last, seen := a.changed[id]
		if !seen {
			a.changed[id] = now
			continue
		}
		if now.Sub(last) <= a.cfg.IdleForget {
			continue
		}
		if _, ok := a.paths.Path(id); ok {
			continue
		}
		gone = append(gone, id)
	}
	if len(gone) == 0 {
		return
	}
	if err := f.Forget(gone); err != nil {
		a.log.Warn("forget counters of removed cgroups", "err", err)
		return
	}
	for _, id := range gone {
		delete(a.changed, id)
		delete(a.prev, id)
		delete(a.prevHealth, id)
	}
}

// checkFull logs (at most once a minute) when the kernel found the counter map full since the last check: those
// cgroups are counted in the node's overflow bucket (Unknown//cgroup-0) instead of their own.
func (a *Agent) checkFull(now time.Time) {
	var ps []probe.MapPressure
	if fc, ok := a.src.(FullCounter); ok {
		// Every tick: the failed-insert counter alone, not Pressure's walk of every map.
		n, err := fc.InsertsFailed()
		if err != nil {
			return
		}
		ps = []probe.MapPressure{{Map: "traffic_counters", Full: n}}
	} else {
		var err error
		if ps, err = a.src.Pressure(); err != nil {
			return
		}
	}
	for _, p := range ps {
		if p.Map != "traffic_counters" || p.Full <= a.lastFull {
			continue
		}
		if now.Sub(a.fullLogged) >= time.Minute {
			a.log.Warn("counter map full: new cgroups are counted in the overflow bucket; raise --bpf.max-cgroups",
				"map", p.Map, "max_entries", p.MaxEntries, "failed_inserts", p.Full, "new", p.Full-a.lastFull)
			a.fullLogged = now
		}
		a.lastFull = p.Full
	}
}

// FullCounter is optionally implemented by the Source (collector/probe does): failed inserts into the counter map,
// read without walking it.
type FullCounter interface {
	InsertsFailed() (uint64, error)
}

// Health is the per-workload latency and outcome totals since the agent started (for metrics).
func (a *Agent) Health() map[string]HealthTotals {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]HealthTotals, len(a.wlHealth))
	for w, t := range a.wlHealth {
		out[w] = HealthTotals{Latency: t.Latency, Outcomes: t.Outcomes}
	}
	return out
}

// HealthTotals are one workload's cumulative latency histogram and outcomes.
type HealthTotals struct {
	Latency  Latency
	Outcomes Outcomes
}

// ProbeState implements metrics.ProbeSource: the probe's design and the per-workload latency and outcome totals.
func (a *Agent) ProbeState(context.Context) metrics.ProbeState {
	var st metrics.ProbeState
	if m, ok := a.src.(interface{ Mode() probe.Mode }); ok {
		st.Mode = string(m.Mode())
	}
	if h, ok := a.src.(interface{ Handoff() bool }); ok {
		st.Handoff = h.Handoff()
	}
	for w, t := range a.Health() {
		st.Workloads = append(st.Workloads, metrics.WorkloadHealth{Workload: w, Buckets: t.Latency.Buckets[:],
			SumUs: t.Latency.SumUs, FailedConnects: t.Outcomes.FailedConnects, ConnectTimeouts: t.Outcomes.ConnectTimeouts,
			Resets: t.Outcomes.Resets, RetransmitTimeouts: t.Outcomes.RetransmitTimeouts})
	}
	return st
}
