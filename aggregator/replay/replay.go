package replay

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
	"github.com/fanoutdev/fanout/aggregator/scenario"
	"github.com/fanoutdev/fanout/api/ramp"
)

// Epoch is the wall-clock second simulated time starts at (2025-12-01T00:00:00Z); decisions report seconds since.
const Epoch int64 = 1764547200

// TxBytesPerRequest is the request size used for tx_bytes (the scenario format does not model it).
const TxBytesPerRequest = 350

// Line is one decision as printed by `fanoutctl replay --json` (field order fixed by DESIGN.md).
type Line struct {
	T        int64  `json:"t"`
	Action   string `json:"action"`
	Workload string `json:"workload"`
	Reason   string `json:"reason"`
}

// Summary is the final line's content.
type Summary struct {
	Scenario                   string   `json:"scenario"`
	Seed                       uint64   `json:"seed"`
	Nodes                      int      `json:"nodes"`
	DurationS                  int64    `json:"duration_s"`
	DryRun                     bool     `json:"dry_run"`
	Decisions                  int      `json:"decisions"`
	Alerts                     int      `json:"alerts"`
	Trips                      int      `json:"trips"`
	Releases                   int      `json:"releases"`
	Alerted                    []string `json:"alerted"`
	Tripped                    []string `json:"tripped"`
	FirstTripT                 *int64   `json:"first_trip_t"`
	ProjectedCollapseT         *int64   `json:"projected_collapse_t"`
	LeadTimeS                  *int64   `json:"lead_time_s"`
	PeakUtilization            float64  `json:"peak_utilization"`
	PeakUtilizationUnmitigated float64  `json:"peak_utilization_unmitigated"`
	Collapsed                  bool     `json:"collapsed"`
	Samples                    int64    `json:"samples"`
	// CapacitySource: "learned" (the detector was not told the world's capacity) or "flag" (it was).
	CapacitySource string `json:"capacity_source"`
	// Headroom is the detector's estimate at the end of the replay (its view, not the world's).
	Headroom HeadroomSummary `json:"headroom"`
}

// HeadroomSummary is the detector's last headroom estimate.
type HeadroomSummary struct {
	Source               string  `json:"source"`
	CapacityRequestsPerS float64 `json:"capacity_requests_per_s"`
	CapacityRxBytesPerS  float64 `json:"capacity_rx_bytes_per_s"`
	Confidence           float64 `json:"confidence"`
	Samples              int     `json:"samples"`
}

// Capacity sources for Options.CapacitySource.
const (
	CapacityLearned = "learned"
	CapacityFlag    = "flag"
)

// Options changes how a replay runs.
type Options struct {
	// Config is the engine configuration; the scenario's capacity and protected workloads are applied on top.
	Config engine.Config
	// Sink receives every decision with its evidence (an audit log); may be nil.
	Sink engine.Sink
	// CapacitySource: CapacityLearned (default, "") feeds the detector only what the world shows (the API server's
	// metrics and the agents' counters and kernel signals); CapacityFlag also tells it the world's capacity, as the
	// aggregator's capacity flags would.
	CapacitySource string
}

type group struct {
	wid     fleet.WorkloadID
	w       *scenario.Workload
	appear  []int32 // seconds, sorted
	podNode []int32 // node of each pod, in appear order
	next    int
	nodes   []int32 // nodes with at least one pod, in order of first pod
	cnt     []uint32
	fresh   []uint32 // pods that appeared this second, per nodes index
	idx     map[int32]int32
	active  int
	desired uint32
}

type block struct {
	blocked bool
	release int64 // simulated second the release ramp started, -1 none
}

// Run replays s. onLine is called for every decision in order.
func Run(ctx context.Context, s *scenario.Scenario, opt Options, onLine func(Line)) (Summary, error) {
	cfg := opt.Config
	source := CapacityLearned
	cfg.Detect.CapacityRequestsPerS, cfg.Detect.CapacityRxBytesPerS = 0, 0
	switch opt.CapacitySource {
	case "", CapacityLearned:
	case CapacityFlag:
		source = CapacityFlag
		cfg.Detect.CapacityRequestsPerS = s.APIServer.CapacityRequestsPerS
		cfg.Detect.CapacityRxBytesPerS = s.APIServer.CapacityRxBytesPerS
	default:
		return Summary{}, fmt.Errorf("replay %s: capacity source %q, want %q or %q", s.Name, opt.CapacitySource, CapacityLearned, CapacityFlag)
	}
	eng := engine.New(cfg, opt.Sink)
	wld := newWorld(&s.APIServer, s.Seed)
	rng := rand.New(rand.NewPCG(s.Seed, 0x5eedfa40))
	N := s.Nodes
	dur := int64(s.Duration / time.Second)
	sum := Summary{Scenario: s.Name, Seed: s.Seed, Nodes: N, DurationS: dur, DryRun: cfg.Switch.DryRun, Alerted: []string{}, Tripped: []string{},
		CapacitySource: source}

	nodeIDs := make([]fleet.NodeID, N)
	offsets := make([]int64, N)
	groups := make([]*group, len(s.Workloads))
	eng.Batch(func(b *engine.Batcher) {
		for i := 0; i < N; i++ {
			name := fmt.Sprintf("node-%05d", i)
			nodeIDs[i] = b.Node(name)
			offsets[i] = int64(ramp.Offset(name, cfg.Switch.RampDuration, cfg.Switch.RampSteps, cfg.Switch.RampJitter) / time.Second)
		}
		for i := range s.Workloads {
			groups[i] = newGroup(&s.Workloads[i], b.Workload(s.Workloads[i].Name), N, rng)
		}
	})
	for _, w := range s.Workloads {
		if w.Protected {
			eng.Protect(w.Name)
		}
	}
	// What the aggregator's placement watcher reads from the API server (DaemonSet desiredNumberScheduled,
	// Deployment replicas / HPA maxReplicas): the most pods any one of the workload's pod groups is placed with.
	desired := map[string]uint32{}
	for _, w := range s.Workloads {
		desired[w.Name] = max(desired[w.Name], uint32(w.Placement.Pods(N)))
	}
	for _, g := range groups {
		g.desired = desired[g.w.Name]
	}
	eng.Start(Epoch)
	blocks := map[fleet.WorkloadID]*block{}
	var version uint64
	alerted, tripped := map[string]bool{}, map[string]bool{}
	utilOf := wld.util
	capKnown := s.APIServer.Known()

	for t := int64(0); t < dur; t++ {
		if t%64 == 0 {
			if err := ctx.Err(); err != nil {
				return sum, fmt.Errorf("replay %s at t=%ds: %w", s.Name, t, err)
			}
		}
		sec := Epoch + t
		fleetPods := 0
		for _, g := range groups {
			g.advance(int32(t))
			fleetPods += g.active
		}
		var expReq, expRx, actReq, actRx float64
		eng.Batch(func(b *engine.Batcher) {
			for _, n := range nodeIDs {
				_ = b.AddNode(sec, n)
			}
			for _, g := range groups {
				if g.active == 0 {
					continue
				}
				lambda := g.w.RequestsPerSAt(time.Duration(t) * time.Second)
				rxPer := g.w.PerPod.RxBytesPerRequest
				switch g.w.PerPod.RxBytesScale {
				case scenario.ScaleNodes:
					rxPer *= float64(N)
				case scenario.ScalePods:
					rxPer *= float64(fleetPods)
				}
				expReq += float64(g.active) * lambda
				expRx += float64(g.active) * lambda * rxPer
				bl := blocks[g.wid]
				for i, n := range g.nodes {
					c := g.cnt[i]
					if c == 0 {
						continue
					}
					smp := fleet.Sample{Workload: g.wid, Pods: c, DesiredPods: g.desired}
					if bl == nil || !bl.blocked || (bl.release >= 0 && t >= bl.release+offsets[n]) {
						k := float64(poisson(rng, lambda*float64(c)))
						smp.Counters = fleet.Counters{Connects: float64(g.fresh[i]), Requests: k, RxBytes: k * rxPer, TxBytes: k * TxBytesPerRequest}
						actReq += k
						actRx += k * rxPer
					}
					b.Add(sec, nodeIDs[n], smp)
					sum.Samples++
				}
			}
		})
		// What the world shows the detector this second: the API server's metrics when a scrape is due, the nodes'
		// kernel signals every second.
		ua := utilOf(actReq, actRx)
		at := time.Unix(sec, 0)
		if smp, ok := wld.scrape(t, at, ua, actReq); ok {
			if err := eng.ObserveAPIServer(smp); err != nil {
				return sum, fmt.Errorf("replay %s at t=%ds: %w", s.Name, t, err)
			}
		}
		if ns := wld.nodes(ua, actReq); !ns.Empty() {
			eng.Batch(func(b *engine.Batcher) { b.AddSignals(sec, &ns) })
		}
		if capKnown {
			ue := utilOf(expReq, expRx)
			if ue >= 1 && sum.ProjectedCollapseT == nil {
				tt := t
				sum.ProjectedCollapseT = &tt
			}
			sum.PeakUtilizationUnmitigated = math.Max(sum.PeakUtilizationUnmitigated, round3(ue))
			sum.PeakUtilization = math.Max(sum.PeakUtilization, round3(ua))
		}
		for _, d := range eng.CloseThrough(sec) {
			line := Line{T: d.Second - Epoch, Action: string(d.Action), Workload: d.Workload, Reason: d.Reason}
			sum.Decisions++
			switch d.Action {
			case killswitch.ActionAlert:
				sum.Alerts++
				alerted[d.Workload] = true
			case killswitch.ActionTrip:
				sum.Trips++
				tripped[d.Workload] = true
				if sum.FirstTripT == nil {
					tt := line.T
					sum.FirstTripT = &tt
				}
			case killswitch.ActionRelease:
				sum.Releases++
			}
			if onLine != nil {
				onLine(line)
			}
		}
		// Agents apply the directive set from the next second on.
		if v, ds := eng.Directives(); v != version {
			version = v
			applyDirectives(eng, ds, blocks, groups)
		}
	}
	if sum.ProjectedCollapseT != nil && sum.FirstTripT != nil && *sum.FirstTripT <= *sum.ProjectedCollapseT {
		lt := *sum.ProjectedCollapseT - *sum.FirstTripT
		sum.LeadTimeS = &lt
	}
	sum.Collapsed = capKnown && sum.PeakUtilization >= 1
	est := eng.Headroom()
	sum.Headroom = HeadroomSummary{Source: string(est.Source), CapacityRequestsPerS: math.Round(est.CapacityRequestsPerS),
		CapacityRxBytesPerS: math.Round(est.CapacityRxBytesPerS), Confidence: est.Confidence, Samples: est.Samples}
	for w := range alerted {
		sum.Alerted = append(sum.Alerted, w)
	}
	for w := range tripped {
		sum.Tripped = append(sum.Tripped, w)
	}
	sort.Strings(sum.Alerted)
	sort.Strings(sum.Tripped)
	return sum, nil
}

func applyDirectives(eng *engine.Engine, ds []killswitch.Directive, blocks map[fleet.WorkloadID]*block, groups []*group) {
	byName := map[string]fleet.WorkloadID{}
	for _, g := range groups {
		byName[g.w.Name] = g.wid
	}
	for _, b := range blocks {
		b.blocked = false
	}
	for _, d := range ds {
		id, ok := byName[d.Workload]
		if !ok {
			continue
		}
		b := blocks[id]
		if b == nil {
			b = &block{}
			blocks[id] = b
		}
		b.blocked = true
		b.release = -1
		if !d.Block {
			b.release = d.Issued - Epoch + 1
		}
	}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

func newGroup(w *scenario.Workload, wid fleet.WorkloadID, nodes int, rng *rand.Rand) *group {
	g := &group{wid: wid, w: w, idx: map[int32]int32{}}
	p := w.Placement.Pods(nodes)
	podNode := make([]int32, p)
	switch w.Placement.Kind {
	case scenario.PlacementAll:
		for i := range podNode {
			podNode[i] = int32(i)
		}
	default:
		perm := rng.Perm(nodes)
		for i := range podNode {
			podNode[i] = int32(perm[i%nodes])
		}
	}
	// Rollout order is random across the fleet.
	rng.Shuffle(len(podNode), func(i, j int) { podNode[i], podNode[j] = podNode[j], podNode[i] })
	start := int64(w.Start / time.Second)
	roll := int64(w.Rollout / time.Second)
	g.appear = make([]int32, p)
	for k := range g.appear {
		at := start
		if roll > 0 && p > 0 {
			at += roll * int64(k) / int64(p)
		}
		g.appear[k] = int32(at)
	}
	g.podNode = podNode
	return g
}

// advance activates the pods that appear at second t.
func (g *group) advance(t int32) {
	for i := range g.fresh {
		g.fresh[i] = 0
	}
	for g.next < len(g.appear) && g.appear[g.next] <= t {
		n := g.podNode[g.next]
		i, ok := g.idx[n]
		if !ok {
			i = int32(len(g.nodes))
			g.idx[n] = i
			g.nodes = append(g.nodes, n)
			g.cnt = append(g.cnt, 0)
			g.fresh = append(g.fresh, 0)
		}
		g.cnt[i]++
		g.fresh[i]++
		g.active++
		g.next++
	}
}

// poisson draws a Poisson variate with mean lambda (Knuth below 30, normal approximation above).
func poisson(rng *rand.Rand, lambda float64) uint64 {
	if lambda <= 0 {
		return 0
	}
	if lambda < 30 {
		l := math.Exp(-lambda)
		k := uint64(0)
		p := rng.Float64()
		for p > l {
			k++
			p *= rng.Float64()
		}
		return k
	}
	x := math.Round(lambda + math.Sqrt(lambda)*rng.NormFloat64())
	if x < 0 {
		return 0
	}
	return uint64(x)
}
