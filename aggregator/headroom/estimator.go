package headroom

import (
	"flag"
	"fmt"
	"math"
	"sort"
	"time"
)

// Config tunes the estimator.
type Config struct {
	// StaleAfter: a replica whose last sample is older than this says nothing about now.
	StaleAfter time.Duration
	// Forget is the time constant with which old fit points lose weight (the API server's cost drifts with object
	// counts, versions and replicas).
	Forget time.Duration
	// MaxPoints bounds the fit's history (and the state file).
	MaxPoints int
	// LoadWindow: an API server sample is paired with fanout's load averaged over this long before it.
	LoadWindow time.Duration
	// FitMin and FitMax: utilization outside [FitMin, FitMax] is not fitted (too little to measure; saturated seats
	// hide the demand).
	FitMin, FitMax float64
	// PriorBytesPerRequest is the cost of one request in response bytes, used only for a dimension that has never
	// been seen to load the API server: its capacity is the other dimension's times (or over) this ratio, and never
	// below the load already seen.
	PriorBytesPerRequest float64
	// ConfidentSamples and ConfidentSpread: the fit is fully trusted after this many samples spanning this much
	// utilization.
	ConfidentSamples int
	ConfidentSpread  float64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		StaleAfter:           30 * time.Second,
		Forget:               2 * time.Hour,
		MaxPoints:            512,
		LoadWindow:           3 * time.Second,
		FitMin:               0.05,
		FitMax:               0.9,
		PriorBytesPerRequest: 500e3,
		ConfidentSamples:     20,
		ConfidentSpread:      0.2,
	}
}

// RegisterFlags binds the config to flags under the "headroom." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.StaleAfter, "headroom.stale-after", c.StaleAfter, "API server metrics older than this say nothing about now")
	fs.DurationVar(&c.Forget, "headroom.forget", c.Forget, "time constant with which old headroom observations lose weight")
	fs.Float64Var(&c.PriorBytesPerRequest, "headroom.prior-bytes-per-request", c.PriorBytesPerRequest, "response bytes costing the API server as much as one request (used only until the data shows it)")
}

// Validate checks the config.
func (c *Config) Validate() error {
	if c.StaleAfter <= 0 || c.Forget <= 0 || c.LoadWindow <= 0 {
		return fmt.Errorf("headroom config: durations must be positive")
	}
	if c.MaxPoints < 8 || c.MaxPoints > 1<<14 {
		return fmt.Errorf("headroom config: max points %d out of [8, 16384]", c.MaxPoints)
	}
	if !(c.FitMin >= 0 && c.FitMin < c.FitMax && c.FitMax <= 1) {
		return fmt.Errorf("headroom config: fit range [%v, %v] invalid", c.FitMin, c.FitMax)
	}
	if !(c.PriorBytesPerRequest > 0) || c.ConfidentSamples < 1 || !(c.ConfidentSpread > 0) {
		return fmt.Errorf("headroom config: prior and confidence settings must be positive")
	}
	return nil
}

// maxReplicas bounds per-replica state (a real control plane has a handful).
const maxReplicas = 64

type replica struct {
	last        APIServerSample
	rejectDelta float64
	prevRejects float64
	havePrev    bool
	// latInflation and latWeight: the last sample's request latency over its per-kind baselines.
	latInflation, latWeight float64
}

// point is one fit observation: fanout's load and the API server's utilization at one scrape.
type point struct {
	T int64   `json:"t"` // unix seconds
	R float64 `json:"r"`
	X float64 `json:"x"`
	U float64 `json:"u"`
	// S marks a saturated observation (utilization past the fit range, queueing or rejections): the API server was
	// serving all it could, so the load then was its capacity.
	S    bool `json:"s,omitempty"`
	Mark bool `json:"-"`
}

type loadSlot struct {
	sec int64
	l   Load
}

// Estimator learns the API server's headroom. Not safe for concurrent use (the engine serializes access).
type Estimator struct {
	cfg      Config
	replicas map[string]*replica
	pending  bool
	loads    [16]loadSlot
	points   []point // ring, oldest first after compaction
	// Learned latency baselines: the API server's request duration per kind of request, and the nodes' time to
	// first byte (seconds).
	latBase             baselines
	nodeBase            float64
	nodeMean            float64
	nodeReadings        int // readings the nodes' baseline has learned from (this process)
	nodeHot             int // seconds in a row the nodes read overload while the API server's metrics were gone
	fit                 fitResult
	est                 Estimate
	lastSample          time.Time
	uSeats, uLat, uNode float64
	// saturated: the last API server reading showed it serving all it can (utilization past FitMax, queueing or
	// rejections).
	saturated bool
	// peak is the highest load of the last saturation, at lastSaturated (unix seconds) or before.
	peak          Load
	lastSaturated int64
	// calm is the most load served, dimension by dimension, while the API server read below saturation since the
	// last saturation point: a floor under both capacities.
	calm Load
}

type fitResult struct {
	ok                     bool
	a, b                   float64 // utilization per request/s and per byte/s
	aPrior, bPrior         bool
	n                      int
	spread                 float64
	evidencedA, evidencedB bool
}

// New returns an estimator with no knowledge.
func New(cfg Config) (*Estimator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Estimator{cfg: cfg, replicas: map[string]*replica{}, latBase: newBaselines(), uSeats: -1, uLat: -1, uNode: -1}
	for i := range e.loads {
		e.loads[i].sec = -1
	}
	e.est = Estimate{Source: SourceNone, UtilizationSeats: -1, UtilizationLatency: -1, UtilizationNodes: -1}
	return e, nil
}

// ObserveAPIServer takes one scrape of one replica; it is used at the next Step.
func (e *Estimator) ObserveAPIServer(s APIServerSample) error {
	if err := s.Validate(); err != nil {
		return err
	}
	r := e.replicas[s.Replica]
	if r == nil {
		if len(e.replicas) >= maxReplicas {
			e.dropOldestReplica()
		}
		r = &replica{}
		e.replicas[s.Replica] = r
	}
	if r.havePrev && !s.Time.After(r.last.Time) {
		return fmt.Errorf("api server sample from %q at %s is not after the last (%s)", s.Replica, s.Time, r.last.Time)
	}
	r.rejectDelta = 0
	if r.havePrev && s.RejectedTotal >= r.prevRejects {
		r.rejectDelta = s.RejectedTotal - r.prevRejects
	}
	r.prevRejects, r.havePrev = s.RejectedTotal, true
	r.last = s
	kinds := s.Latencies
	if len(kinds) == 0 && s.Duration.Count > 0 {
		kinds = []KeyedLatency{{Key: "", Count: s.Duration.Count, Mean: s.Duration.Mean}}
	}
	busy := s.LimitSeats > 0 && s.ExecutingSeats >= 0.7*s.LimitSeats
	r.latInflation, r.latWeight = e.latBase.observe(kinds, busy)
	e.pending = true
	if s.Time.After(e.lastSample) {
		e.lastSample = s.Time
	}
	return nil
}

func (e *Estimator) dropOldestReplica() {
	oldest := ""
	var t time.Time
	for name, r := range e.replicas {
		if oldest == "" || r.last.Time.Before(t) {
			oldest, t = name, r.last.Time
		}
	}
	delete(e.replicas, oldest)
}

// Estimate returns the estimate of the last Step.
func (e *Estimator) Estimate() Estimate { return e.est }

// Step folds one closed second in: fanout's load for that second and what the nodes saw; API server samples
// observed since the last step are paired with the load and fitted. It returns the estimate for now.
func (e *Estimator) Step(now time.Time, load Load, nodes *NodeSignals) Estimate {
	sec := now.Unix()
	if !finite(load.Requests) || !finite(load.RxBytes) || load.Requests < 0 || load.RxBytes < 0 {
		load = Load{}
	}
	e.loads[sec%int64(len(e.loads))] = loadSlot{sec: sec, l: load}
	fresh := false
	var exec, limit, inq, rej, latLog, latW float64
	for _, r := range e.replicas {
		if now.Sub(r.last.Time) > e.cfg.StaleAfter {
			continue
		}
		fresh = true
		exec += r.last.ExecutingSeats
		limit += r.last.LimitSeats
		inq += r.last.InQueue
		rej += r.rejectDelta
		if r.latWeight > 0 {
			latLog += r.latWeight * math.Log(r.latInflation)
			latW += r.latWeight
		}
	}
	if !fresh {
		e.uSeats, e.uLat, e.saturated = -1, -1, false
	}
	if fresh && e.pending {
		e.pending = false
		e.uSeats, e.uLat = -1, -1
		if limit > 0 {
			u := exec / limit
			if u >= 0.95 {
				u += inq / limit
			}
			if rej > 0 {
				u = math.Max(u, 1.05)
			}
			e.uSeats = u
		}
		if latW > 0 {
			e.uLat = inflationUtil(math.Exp(latLog / latW))
		}
		// Seats miss a CPU-bound API server (few seats held, each request slow); latency misses a server with idle
		// cores and full seats. Each is a lower bound on how busy it is: the larger one is used.
		u := math.Max(e.uSeats, e.uLat)
		// Hysteresis: once saturated, the server stays so until its latency falls well back (5x its baseline), so
		// that one quicker reading inside an overload does not reset the overload rule's count.
		e.saturated = u > e.cfg.FitMax || e.saturated && u > saturationExit || limit > 0 && inq > 0.05*limit || rej > 0
		if u >= 0 {
			if l, ok := e.loadBefore(sec); ok && (l.Requests > 0 || l.RxBytes > 0) {
				switch {
				case e.saturated:
					if e.servesWhatFanoutSees(sec, l, true) {
						e.addSaturated(point{T: sec, R: l.Requests, X: l.RxBytes, U: math.Max(u, 1), S: true})
					}
				case u >= e.cfg.FitMin && (e.uLat <= e.uSeats || u >= latencyFitMin) && e.servesWhatFanoutSees(sec, l, false):
					e.servedCalmly(l)
					e.addPoint(point{T: sec, R: l.Requests, X: l.RxBytes, U: u})
					e.refit(sec)
				default:
					if e.servedCalmly(l) {
						e.refit(sec)
					}
				}
			}
		}
	}
	e.observeNodes(nodes, load)
	if !fresh && !e.fit.ok && e.uNode >= e.cfg.FitMax {
		// No capacity learned and no API server metrics (never scraped, or gone before a fit): the nodes' kernels
		// stand in for its saturation readings. Each stretch of nodeSaturatedFor seconds at overload makes one
		// saturation point. A capacity already learned stays in force while the metrics are gone (the nodes then
		// say how busy it is: a load fanout does not see, a degraded replica).
		e.nodeHot++
		if e.nodeHot%nodeSaturatedFor == 0 {
			if l, ok := e.loadBefore(sec); ok && (l.Requests > 0 || l.RxBytes > 0) && e.servesWhatFanoutSees(sec, l, true) {
				e.addSaturated(point{T: sec, R: l.Requests, X: l.RxBytes, U: math.Max(e.uNode, 1), S: true})
			}
		}
	} else {
		e.nodeHot = 0
	}
	return e.estimate(now, fresh, load)
}

// drainShare and drainWindow: within drainWindow seconds of a saturated reading, a reading whose load fell below
// drainShare of the saturation's peak, in both dimensions, is the API server draining.
const (
	drainShare  = 0.5
	drainWindow = 60
)

// servesWhatFanoutSees tells whether l is what the API server was serving when it read saturated (saturated) or
// busy. The load that saturated it may be cut off (the kill switch) or give up, while the server keeps working off
// requests whose clients are gone: it reads saturated for many seconds more, and busy for as long again while its
// slowest requests finish (up to a minute). The little load fanout still measures then is not what loads it, and
// learning from it would read every later load as an overload. The peak is forgotten drainWindow after the last
// saturated reading.
func (e *Estimator) servesWhatFanoutSees(sec int64, l Load, saturated bool) bool {
	if sec-e.lastSaturated > drainWindow {
		e.peak = Load{}
	}
	if saturated {
		e.lastSaturated = sec
		e.peak.Requests = math.Max(e.peak.Requests, l.Requests)
		e.peak.RxBytes = math.Max(e.peak.RxBytes, l.RxBytes)
	}
	return l.Requests >= drainShare*e.peak.Requests || l.RxBytes >= drainShare*e.peak.RxBytes
}

// addSaturated records a saturation point: loads served calmly before it floor the capacity no more.
func (e *Estimator) addSaturated(p point) {
	e.calm = Load{}
	e.addPoint(p)
	e.refit(p.T)
}

// servedCalmly folds in a load the API server carried below saturation; it tells whether the floor rose while a
// saturation point bounds the fit.
func (e *Estimator) servedCalmly(l Load) bool {
	raised := l.Requests > e.calm.Requests || l.RxBytes > e.calm.RxBytes
	e.calm.Requests = math.Max(e.calm.Requests, l.Requests)
	e.calm.RxBytes = math.Max(e.calm.RxBytes, l.RxBytes)
	return raised
}

// nodeSaturatedFor: seconds in a row of the nodes reading the API server at overload (answers 10x slower than their
// baseline, or failing) that make one saturation point while its own metrics are gone.
const nodeSaturatedFor = 5

func (e *Estimator) observeNodes(n *NodeSignals, load Load) {
	if n == nil || n.Empty() {
		return
	}
	u := -1.0
	if n.Latency.Count > 0 {
		m := n.Latency.TypicalSeconds()
		if e.nodeMean == 0 {
			e.nodeMean = m
		} else {
			e.nodeMean += 0.3 * (m - e.nodeMean)
		}
		// The baseline learns while the API server's metrics do not say it is busy and the nodes' own reading is
		// below overload: an overload the metrics cannot show (they are gone) must not become the baseline.
		busy := math.Max(e.uSeats, e.uLat) >= 0.7 || latencyUtil(e.nodeBase, e.nodeMean) >= nodeLearnMax
		if !busy {
			e.nodeBase = track(e.nodeBase, e.nodeMean, e.nodeReadings < nodeWarmup)
			e.nodeReadings++
		}
		u = latencyUtil(e.nodeBase, e.nodeMean)
	}
	failed := float64(n.FailedConnects + n.ConnectTimeouts + n.Resets)
	if failed > 0 && failed >= 0.01*math.Max(1, math.Max(float64(n.Latency.Count), load.Requests)) {
		u = math.Max(u, 1.05)
	}
	e.uNode = u
}

// saturationExit: a saturated API server is taken as saturated until its utilization falls to this.
const saturationExit = 0.8

// latencyFitMin: utilization read from latency alone is fitted only from here (latency 1.25x its baseline): below,
// a GC pause or a slow disk moves it as much as load does.
const latencyFitMin = 0.2

// nodeLearnMax: the nodes' latency baseline does not learn from a reading this high (10x the baseline).
const nodeLearnMax = 0.9

// nodeWarmup: the nodes' baseline follows its first readings both ways at the fast rate, so a first second that
// happened to be quick does not leave it low for minutes.
const nodeWarmup = 10

// track follows the nodes' latency baseline in log space, down five times faster than up: it settles near a low
// percentile of the typical latency (about the 17th), so that a calm API server reads well below busy and the
// second-to-second noise of a few dozen answers stays below overload.
func track(base, x float64, warmup bool) float64 {
	if base <= 0 {
		return x
	}
	if x <= 0 {
		return base
	}
	lb, lx := math.Log(base), math.Log(x)
	if lx < lb || warmup {
		return math.Exp(lb + 0.1*(lx-lb))
	}
	return math.Exp(lb + 0.02*(lx-lb))
}

// latencyUtil maps latency against its baseline to a utilization, as a single queue would: latency ~ 1/(1-u).
func latencyUtil(base, x float64) float64 {
	if base <= 0 || x <= 0 {
		return -1
	}
	return math.Max(0, 1-base/x)
}

func (e *Estimator) loadBefore(sec int64) (Load, bool) {
	w := max(1, int64(e.cfg.LoadWindow/time.Second))
	var l Load
	n := 0
	for s := sec - w + 1; s <= sec; s++ {
		slot := e.loads[((s%int64(len(e.loads)))+int64(len(e.loads)))%int64(len(e.loads))]
		if slot.sec == s {
			l.Requests += slot.l.Requests
			l.RxBytes += slot.l.RxBytes
			n++
		}
	}
	if n == 0 {
		return l, false
	}
	return Load{Requests: l.Requests / float64(n), RxBytes: l.RxBytes / float64(n)}, true
}

func (e *Estimator) addPoint(p point) {
	if len(e.points) >= e.cfg.MaxPoints {
		copy(e.points, e.points[1:])
		e.points = e.points[:len(e.points)-1]
	}
	e.points = append(e.points, p)
}

func (e *Estimator) estimate(now time.Time, fresh bool, load Load) Estimate {
	est := Estimate{Time: now, Source: SourceNone, UtilizationSeats: e.uSeats, UtilizationLatency: e.uLat,
		UtilizationNodes: e.uNode, APIServerFresh: fresh, LastAPIServerSample: e.lastSample}
	f := &e.fit
	if f.ok {
		est.Source = SourceLearned
		if f.a > 0 {
			est.CapacityRequestsPerS = 1 / f.a
		}
		if f.b > 0 {
			est.CapacityRxBytesPerS = 1 / f.b
		}
		est.RequestsFromPrior, est.RxBytesFromPrior = f.aPrior, f.bPrior
		est.Samples, est.Spread = f.n, f.spread
		c := math.Min(1, float64(f.n)/float64(e.cfg.ConfidentSamples)) * (0.5 + 0.5*math.Min(1, f.spread/e.cfg.ConfidentSpread))
		if f.aPrior || f.bPrior {
			c *= 0.8
		}
		est.Confidence = round3(c)
	}
	switch {
	case fresh && e.uLat > e.uSeats:
		est.Utilization, est.UtilizationSource = e.uLat, FromLatency
	case fresh && e.uSeats >= 0:
		est.Utilization, est.UtilizationSource = e.uSeats, FromSeats
	default:
		// The API server's metrics are gone: the last capacity stays in force; the nodes say how it answers.
		if est.Known() {
			est.Utilization, est.UtilizationSource = est.UtilizationOf(load), FromModel
		}
		if e.uNode >= 0 && (e.uNode > est.Utilization || !est.Known()) {
			est.Utilization, est.UtilizationSource = e.uNode, FromNodes
		}
	}
	if fresh && e.saturated {
		// Serving all it can: utilization read from latency approaches 1 only asymptotically, and queueing or
		// rejections mean the demand is past what the seats show.
		est.Saturated = true
		est.Utilization = math.Max(est.Utilization, 1)
	}
	e.est = est
	return est
}

// refit fits u = max(a*R, b*X) (the API server saturates on whichever it runs out of first) to the weighted points.
// For each dimension the per-unit cost is bounded above by u/load at every point, with equality where that dimension
// binds: the estimate is the least-squares slope through the points near that lower envelope. A dimension whose
// envelope is never separated from the other's (the load's mix never changed) is set from the prior cost ratio,
// never below what the data allows.
func (e *Estimator) refit(now int64) {
	tau := e.cfg.Forget.Seconds()
	var pts, sat []point
	for _, p := range e.points {
		if p.S {
			sat = append(sat, p)
		} else {
			pts = append(pts, p)
		}
	}
	f := e.fitEnvelope(pts, now, tau)
	f.n = len(e.points)
	e.bound(&f, pts, sat, now, tau)
	f.ok = f.a > 0 || f.b > 0
	e.fit = f
}

// fitEnvelope fits the points below saturation.
func (e *Estimator) fitEnvelope(pts []point, now int64, tau float64) fitResult {
	f := fitResult{}
	if len(pts) == 0 {
		return f
	}
	w := make([]float64, len(pts))
	umin, umax := math.Inf(1), math.Inf(-1)
	for i, p := range pts {
		w[i] = math.Exp(-float64(now-p.T) / tau)
		umin, umax = math.Min(umin, p.U), math.Max(umax, p.U)
	}
	a, setA := envelope(pts, w, func(p *point) float64 { return p.R })
	b, setB := envelope(pts, w, func(p *point) float64 { return p.X })
	// A dimension is evidenced when some point near its envelope is clearly off the other's: there, it alone
	// explains the utilization.
	if a > 0 && b > 0 {
		for i := range pts {
			if setA[i] && pts[i].X > 0 && pts[i].U/pts[i].X > 1.3*b {
				f.evidencedA = true
			}
			if setB[i] && pts[i].R > 0 && pts[i].U/pts[i].R > 1.3*a {
				f.evidencedB = true
			}
		}
	}
	prior := e.cfg.PriorBytesPerRequest
	switch {
	case a > 0 && b > 0 && f.evidencedA && f.evidencedB:
	case a > 0 && (f.evidencedA || (!f.evidencedB && mixRatio(pts, w) <= prior)):
		// Requests bind; bytes cost at most what the data allows, else the prior's share.
		if b == 0 || a/prior < b {
			b, f.bPrior = a/prior, true
		}
	case b > 0:
		if a == 0 || b*prior < a {
			a, f.aPrior = b*prior, true
		}
	}
	f.a, f.b, f.spread = a, b, umax-umin
	return f
}

// bound corrects the fit with what saturation showed directly. While the API server was saturated, the load fanout
// measured was what it could serve: the weighted median of load over utilization there caps each capacity (the fit
// extrapolates from below, and utilization read from latency under-reads a many-core server until it is nearly
// full). And a load served below saturation after the last saturated observation, fitted or read too calm to fit,
// is a floor (over FitMax: it read at most that busy): a capacity learned during an overload caused by something
// else (a slow etcd) does not outlive the newer evidence that the server carried more. Loads served before the
// saturation are not: the server may since have become costlier.
func (e *Estimator) bound(f *fitResult, pts, sat []point, now int64, tau float64) {
	if len(sat) == 0 {
		return
	}
	calm := point{R: e.calm.Requests, X: e.calm.RxBytes}
	w := make([]float64, len(sat))
	lastSat := int64(0)
	for i, p := range sat {
		w[i] = math.Exp(-float64(now-p.T) / tau)
		lastSat = max(lastSat, p.T)
	}
	for _, d := range []struct {
		cost  *float64
		prior *bool
		load  func(*point) float64
	}{
		{&f.a, &f.aPrior, func(p *point) float64 { return p.R }},
		{&f.b, &f.bPrior, func(p *point) float64 { return p.X }},
	} {
		c := weightedMedian(sat, w, func(p *point) float64 { return d.load(p) / p.U })
		if !(c > 0) {
			continue
		}
		if *d.cost == 0 || 1/(*d.cost) > c {
			*d.cost, *d.prior = 1/c, false
		}
		floor := d.load(&calm)
		for _, p := range pts {
			if p.T > lastSat {
				floor = math.Max(floor, d.load(&p))
			}
		}
		// The server carried that load reading at most FitMax busy.
		if floor /= e.cfg.FitMax; floor > 1/(*d.cost) {
			*d.cost = 1 / floor
		}
	}
	umin, umax := math.Inf(1), math.Inf(-1)
	for _, p := range append(pts, sat...) {
		umin, umax = math.Min(umin, math.Min(p.U, 1)), math.Max(umax, math.Min(p.U, 1))
	}
	f.spread = umax - umin
}

// weightedMedian returns the weighted median of v over pts (0 when empty).
func weightedMedian(pts []point, w []float64, v func(*point) float64) float64 {
	type q struct{ v, w float64 }
	qs := make([]q, 0, len(pts))
	tot := 0.0
	for i := range pts {
		if x := v(&pts[i]); x > 0 && finite(x) {
			qs = append(qs, q{x, w[i]})
			tot += w[i]
		}
	}
	if len(qs) == 0 {
		return 0
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].v < qs[j].v })
	acc := 0.0
	for _, x := range qs {
		acc += x.w
		if acc >= tot/2 {
			return x.v
		}
	}
	return qs[len(qs)-1].v
}

// mixRatio is the weighted bytes per request of the fitted load.
func mixRatio(pts []point, w []float64) float64 {
	var r, x float64
	for i, p := range pts {
		r += w[i] * p.R
		x += w[i] * p.X
	}
	if r == 0 {
		return math.Inf(1)
	}
	return x / r
}

// envelope returns the per-unit cost of one dimension: the weighted least-squares slope through the origin over the
// points whose u/load lies within 25% of the weighted 10th percentile of u/load, and the points it used.
func envelope(pts []point, w []float64, load func(*point) float64) (float64, []bool) {
	type q struct {
		v, w float64
	}
	qs := make([]q, 0, len(pts))
	tot := 0.0
	for i := range pts {
		if l := load(&pts[i]); l > 0 {
			qs = append(qs, q{pts[i].U / l, w[i]})
			tot += w[i]
		}
	}
	set := make([]bool, len(pts))
	if len(qs) == 0 {
		return 0, set
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].v < qs[j].v })
	low, acc := qs[0].v, 0.0
	for _, x := range qs {
		acc += x.w
		if acc >= 0.1*tot {
			low = x.v
			break
		}
	}
	var num, den float64
	for i := range pts {
		l := load(&pts[i])
		if l > 0 && pts[i].U/l <= 1.25*low {
			set[i] = true
			num += w[i] * pts[i].U * l
			den += w[i] * l * l
		}
	}
	if den == 0 {
		return 0, set
	}
	return num / den, set
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
