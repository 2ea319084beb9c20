package fleet

import (
	"errors"
	"fmt"
	"strings"
)

// ring is how many seconds are open at once: a report may arrive for any of them.
const ring = 4

// Errors returned when a report cannot be placed in a window.
var (
	ErrLate          = errors.New("report for a closed second")
	ErrFuture        = errors.New("report too far in the future")
	ErrStaleSequence = errors.New("sequence not above the node's last")
)

// WorkloadID and NodeID are interned names.
type (
	WorkloadID int32
	NodeID     int32
)

// Counters are deltas over one second.
type Counters struct {
	Connects, Requests, TxBytes, RxBytes float64
}

// Sample is one workload's traffic on one node during one second.
type Sample struct {
	Workload    WorkloadID
	Counters    Counters
	Pods        uint32
	DesiredPods uint32
}

type acc struct {
	sec     int64
	c       Counters
	pods    uint32
	desired uint32
	nodes   uint32
}

type pslot struct {
	sec     int64
	req, rx float32
	pods    uint32
}

// pair is the constant-size state of one workload on one node.
type pair struct {
	slot            [ring]pslot
	baseReq, baseRx float32 // per pod
	age             int32
	jumpSince       int64
	lastSec         int64
	// podsMax is the most pods seen on the node recently (idle pods are left out of reports).
	podsMax    uint32
	podsMaxSec int64
}

// podsMemory is how long a pair remembers a higher pod count.
const podsMemory = 60

type workload struct {
	name, kind string
	acc        [ring]acc
	pairs      map[NodeID]*pair

	firstSec, lastSec int64
	created           int64 // last closed second when interned
	seen              bool
	frozen            bool

	last             Counters
	pods, maxPods    uint32
	desired          uint32
	nodes            uint32
	lastGrowth       int64
	baseReq, baseRx  float64 // per pod
	baseN            int64
	maxDensity       float64
	jumpedSince      int64
	costReq, costRx  float64
	sumReq, sumRx    float64
	sumPods          float64
	costN            int64
	observedRequests float64
	sync, est        int
}

type node struct {
	name    string
	lastSec int64
	lastSeq uint64
	seen    bool
	secs    [ring]int64 // seconds reported, by slot
}

func (n *node) reported(sec int64) bool { return n.secs[sec%ring] == sec }

// Fleet is not safe for concurrent use: the engine serializes access.
type Fleet struct {
	cfg      Config
	startSec int64 // first second watched
	// baselinesPaused: no baseline learns this second (PauseBaselines).
	baselinesPaused bool
	// arrivedPaused: no workload that arrived while the fleet was watched learns a baseline (PauseArrivedBaselines).
	arrivedPaused bool
	wids          map[string]WorkloadID
	workloads     []*workload
	nids          map[string]NodeID
	nodes         []node
	nodeCount     [ring]struct {
		sec int64
		n   int
	}
	lastClosed int64
	started    bool
	snap       Snapshot
	// Bounded name table (evict.go): freed IDs, live names, last eviction scan.
	free         []WorkloadID
	live         int
	evictScan    int64
	evictScanned bool
}

// New returns an empty fleet.
func New(cfg Config) *Fleet {
	return &Fleet{cfg: cfg, wids: map[string]WorkloadID{}, nids: map[string]NodeID{}}
}

// Workload interns a workload name.
func (f *Fleet) Workload(name string) WorkloadID {
	if id, ok := f.wids[name]; ok {
		return id
	}
	if f.cfg.MaxWorkloads > 0 && f.live >= f.cfg.MaxWorkloads && name != Overflow {
		f.evictIdle()
		if f.live >= f.cfg.MaxWorkloads {
			return f.Workload(Overflow)
		}
	}
	kind, _, _ := strings.Cut(name, "/")
	w := &workload{name: name, kind: kind, pairs: map[NodeID]*pair{}, created: f.lastClosed}
	for i := range w.acc {
		w.acc[i].sec = -1
	}
	var id WorkloadID
	if n := len(f.free); n > 0 {
		id, f.free = f.free[n-1], f.free[:n-1]
		f.workloads[id] = w
	} else {
		id = WorkloadID(len(f.workloads))
		f.workloads = append(f.workloads, w)
	}
	f.wids[name] = id
	f.live++
	return id
}

// WorkloadName returns the name of an interned workload.
func (f *Fleet) WorkloadName(id WorkloadID) string {
	if w := f.workloads[id]; w != nil {
		return w.name
	}
	return ""
}

// Node interns a node name.
func (f *Fleet) Node(name string) NodeID {
	if id, ok := f.nids[name]; ok {
		return id
	}
	id := NodeID(len(f.nodes))
	f.nids[name] = id
	f.nodes = append(f.nodes, node{name: name, lastSec: -1, secs: [ring]int64{-1, -1, -1, -1}})
	return id
}

// LastClosed returns the last closed second and whether any second was closed or started.
func (f *Fleet) LastClosed() (int64, bool) { return f.lastClosed, f.started }

// Start sets the first second that will be closed (sec-1 counts as closed). Needed once, before reports.
func (f *Fleet) Start(sec int64) {
	if !f.started {
		f.started = true
		f.startSec = sec
		f.lastClosed = sec - 1
		for i := range f.nodeCount {
			f.nodeCount[i].sec = -1
		}
	}
}

// PauseBaselines stops (or resumes) learning every workload's baselines, per node and fleet-wide, from the next
// closed second on: the engine pauses them while the API server is overloaded, because a baseline learned then is
// the overload itself (a workload rolled out into it would count as its own baseline, never as the cause).
func (f *Fleet) PauseBaselines(paused bool) { f.baselinesPaused = paused }

// PauseArrivedBaselines stops (or resumes) learning the baselines of workloads that arrived while the fleet was
// watched (View.Arrived), from the next closed second on: the engine pauses them while the API server reads busy,
// so that a workload rolled out into a degrading API server does not make its first seconds, before the overload
// is established, its normal.
func (f *Fleet) PauseArrivedBaselines(paused bool) { f.arrivedPaused = paused }

// Freeze stops learning baselines and cost for a workload (while it is blocked its traffic is not its own doing).
// Unfreezing forgets the per-pod cost learned before the block: pods that come back (often fixed) are measured afresh.
func (f *Fleet) Freeze(id WorkloadID, frozen bool) {
	w := f.workloads[id]
	if w == nil {
		return
	}
	if w.frozen && !frozen {
		w.costN, w.sumReq, w.sumRx, w.sumPods, w.costReq, w.costRx = 0, 0, 0, 0, 0, 0
	}
	w.frozen = frozen
}

// AddNode registers that node n reported for second sec with sequence seq (0 = do not check sequences).
func (f *Fleet) AddNode(sec int64, n NodeID, seq uint64) error {
	if !f.started {
		f.Start(sec)
	}
	if sec <= f.lastClosed {
		return fmt.Errorf("second %d, last closed %d: %w", sec, f.lastClosed, ErrLate)
	}
	if sec > f.lastClosed+ring {
		return fmt.Errorf("second %d, last closed %d: %w", sec, f.lastClosed, ErrFuture)
	}
	nd := &f.nodes[n]
	if seq != 0 {
		if nd.seen && seq <= nd.lastSeq && seq != 1 {
			return fmt.Errorf("node %s sequence %d after %d: %w", nd.name, seq, nd.lastSeq, ErrStaleSequence)
		}
		nd.lastSeq = seq
	}
	if nd.secs[sec%ring] == sec {
		return fmt.Errorf("node %s second %d: %w", nd.name, sec, ErrDuplicateSecond)
	}
	nd.seen = true
	if nd.secs[sec%ring] != sec {
		nd.secs[sec%ring] = sec
		if sec > nd.lastSec {
			nd.lastSec = sec
		}
		c := &f.nodeCount[sec%ring]
		if c.sec != sec {
			c.sec, c.n = sec, 0
		}
		c.n++
	}
	return nil
}

// Add adds one workload's sample from node n for second sec; call AddNode for the same second first.
func (f *Fleet) Add(sec int64, n NodeID, s Sample) {
	if sec <= f.lastClosed || sec > f.lastClosed+ring {
		return
	}
	w := f.workloads[s.Workload]
	if w == nil {
		return
	}
	a := &w.acc[sec%ring]
	if a.sec != sec {
		*a = acc{sec: sec}
	}
	a.c.Connects += s.Counters.Connects
	a.c.Requests += s.Counters.Requests
	a.c.TxBytes += s.Counters.TxBytes
	a.c.RxBytes += s.Counters.RxBytes
	a.pods += s.Pods
	if s.DesiredPods > a.desired {
		a.desired = s.DesiredPods
	}
	p := w.pairs[n]
	if p == nil {
		p = &pair{}
		for i := range p.slot {
			p.slot[i].sec = -1
		}
		w.pairs[n] = p
	}
	// A pair lives from the second of its first report, which may be ahead of the second closed next: left at
	// zero, its last-seen second would read as long forgotten and the close of an earlier second would delete it,
	// with the report it holds, again on every later report.
	p.lastSec = max(p.lastSec, sec)
	ps := &p.slot[sec%ring]
	if ps.sec != sec {
		*ps = pslot{sec: sec}
		a.nodes++
	}
	ps.req += float32(s.Counters.Requests)
	ps.rx += float32(s.Counters.RxBytes)
	ps.pods += s.Pods
}

func alpha(n int64, tau float64) float64 {
	if float64(n+1) < tau {
		return 1 / float64(n+1)
	}
	return 1 / tau
}

// Close closes the next second (LastClosed()+1) and returns the fleet view at its end. The snapshot is reused by
// the next Close.
func (f *Fleet) Close() *Snapshot {
	sec := f.lastClosed + 1
	f.lastClosed = sec
	cfg := f.cfg
	warm := int32(cfg.Warmup.Seconds())
	forget := int64(cfg.Forget.Seconds())
	win := int64(cfg.SurgeWindow.Seconds())
	nodeTau, fleetTau, costTau := cfg.NodeBaselineTau.Seconds(), cfg.FleetBaselineTau.Seconds(), cfg.CostTau.Seconds()

	s := &f.snap
	s.Second = sec
	s.NodesReporting = 0
	if c := f.nodeCount[sec%ring]; c.sec == sec {
		s.NodesReporting = c.n
	}
	s.NodesKnown = 0
	for i := range f.nodes {
		if f.nodes[i].seen && sec-f.nodes[i].lastSec <= forget {
			s.NodesKnown++
		}
	}
	s.Workloads = s.Workloads[:0]
	s.Total = Counters{}
	s.FleetPods = 0
	for id, w := range f.workloads {
		if w == nil {
			continue
		}
		a := w.acc[sec%ring]
		w.acc[sec%ring].sec = -1
		if a.sec != sec {
			a = acc{}
		} else {
			if !w.seen {
				w.seen, w.firstSec = true, sec
			}
			w.lastSec = sec
		}
		if !w.seen {
			continue
		}
		arrived := w.firstSec > f.startSec+int64(warm)
		paused := f.baselinesPaused || arrived && f.arrivedPaused
		if sec-w.lastSec > forget {
			if len(w.pairs) > 0 {
				w.pairs = map[NodeID]*pair{}
			}
			continue
		}
		w.last = a.c
		// Per node: count nodes whose per-pod rate jumped recently against their own baseline, and the pods
		// present on nodes that reported this second. Agents leave idle pods and workloads out of a report, so a
		// (workload, node) pair that had traffic recently counts its pods (and a zero rate) when its node reported.
		sync, est := 0, 0
		var present uint32
		for nid, p := range w.pairs {
			ps := p.slot[sec%ring]
			p.slot[sec%ring].sec = -1
			if ps.sec == sec {
				if ps.pods >= p.podsMax || sec-p.podsMaxSec > podsMemory {
					p.podsMax, p.podsMaxSec = ps.pods, sec
				}
			} else {
				if sec-p.lastSec > forget {
					delete(w.pairs, nid)
					continue
				}
				if !f.nodes[nid].reported(sec) {
					continue
				}
				ps = pslot{sec: sec}
			}
			pods := max(ps.pods, p.podsMax)
			if pods == 0 {
				continue
			}
			present += pods
			req, rx := ps.req/float32(pods), ps.rx/float32(pods)
			if p.age >= warm {
				est++
				j := req >= float32(cfg.JumpFactor)*p.baseReq+float32(cfg.JumpMinRequests) ||
					rx >= float32(cfg.JumpFactor)*p.baseRx+float32(cfg.JumpMinRxBytes)
				if j {
					if p.jumpSince == 0 {
						p.jumpSince = sec
					}
					if sec-p.jumpSince < win {
						sync++
					}
					if sec-p.jumpSince > 900 && !w.frozen {
						p.baseReq, p.baseRx, p.jumpSince = req, rx, 0
					}
					continue
				}
				p.jumpSince = 0
			}
			if w.frozen || paused {
				continue
			}
			al := float32(alpha(int64(p.age), nodeTau))
			p.baseReq += al * (req - p.baseReq)
			p.baseRx += al * (rx - p.baseRx)
			p.age++
		}
		w.sync, w.est = sync, est
		w.pods, w.nodes = present, a.nodes
		if a.desired > 0 {
			w.desired = a.desired
		}
		if present > w.maxPods {
			w.maxPods = present
		}
		// Growth is judged by pods per reporting node, so nodes that miss a report do not look like a rollout.
		if s.NodesReporting > 0 && present > 0 {
			if d := float64(present) / float64(s.NodesReporting); d > w.maxDensity*1.02 {
				w.maxDensity, w.lastGrowth = d, sec
			}
		}
		if !w.frozen && present > 0 {
			// Per-pod cost as a ratio of moving sums, so seconds with few pods weigh little.
			al := alpha(w.costN, costTau)
			w.sumReq += al * (a.c.Requests - w.sumReq)
			w.sumRx += al * (a.c.RxBytes - w.sumRx)
			w.sumPods += al * (float64(present) - w.sumPods)
			w.costReq, w.costRx = w.sumReq/w.sumPods, w.sumRx/w.sumPods
			w.costN++
			w.observedRequests += a.c.Requests
		}
		// Fleet baseline per pod, learned while the workload is not jumped as a whole: robust to rollouts,
		// scaling and nodes missing a report.
		pods := float64(max(present, 1))
		perReq, perRx := a.c.Requests/pods, a.c.RxBytes/pods
		jumped := w.baseN >= int64(warm) && (perReq >= cfg.JumpFactor*w.baseReq+cfg.JumpMinRequests ||
			perRx >= cfg.JumpFactor*w.baseRx+cfg.JumpMinRxBytes)
		if jumped && w.jumpedSince == 0 {
			w.jumpedSince = sec
		}
		if !jumped {
			w.jumpedSince = 0
		}
		if !w.frozen && !paused && present > 0 && (!jumped || sec-w.jumpedSince > 900) {
			al := alpha(w.baseN, fleetTau)
			w.baseReq += al * (perReq - w.baseReq)
			w.baseRx += al * (perRx - w.baseRx)
			w.baseN++
		}
		s.Total.Connects += a.c.Connects
		s.Total.Requests += a.c.Requests
		s.Total.TxBytes += a.c.TxBytes
		s.Total.RxBytes += a.c.RxBytes
		s.FleetPods += present
		s.Workloads = append(s.Workloads, View{
			ID: WorkloadID(id), Name: w.name, Kind: w.kind,
			Now: a.c, BaseRequests: w.baseReq * float64(present), BaseRxBytes: w.baseRx * float64(present),
			BasePerPodRequests: w.baseReq, BaseKnown: w.baseN >= int64(warm),
			Pods: present, MaxPods: w.maxPods, DesiredPods: w.desired, Nodes: a.nodes,
			CostRequests: w.costReq, CostRxBytes: w.costRx, ObservedRequests: w.observedRequests,
			LastGrowth: w.lastGrowth, FirstSecond: w.firstSec,
			SyncNodes: sync, EstablishedNodes: est, Frozen: w.frozen, Arrived: arrived,
		})
	}
	return s
}

// Pairs returns how many (workload, node) states are held (for memory accounting).
func (f *Fleet) Pairs() int {
	n := 0
	for _, w := range f.workloads {
		if w == nil {
			continue
		}
		n += len(w.pairs)
	}
	return n
}
