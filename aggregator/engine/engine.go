package engine

import (
	"fmt"
	"sync"
	"time"

	"github.com/fanoutdev/fanout/aggregator/detect"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// Config gathers the parts' configs.
type Config struct {
	Fleet  fleet.Config
	Detect detect.Config
	Switch killswitch.Config
	// Headroom tunes the online estimator of the API server's headroom. Detect's capacity flags, when set, override
	// what it learns (capacity source "flag").
	Headroom headroom.Config
}

// DefaultConfig returns the defaults of every part.
func DefaultConfig() Config {
	return Config{Fleet: fleet.DefaultConfig(), Detect: detect.DefaultConfig(), Switch: killswitch.DefaultConfig(), Headroom: headroom.DefaultConfig()}
}

// Validate checks the parts' configs that can be invalid.
func (c *Config) Validate() error {
	if err := c.Headroom.Validate(); err != nil {
		return fmt.Errorf("engine config: %w", err)
	}
	return nil
}

// Sink receives every decision (the audit log).
type Sink interface {
	Record(d killswitch.Decision)
}

// WorkloadReport is one workload's traffic on a node during one second.
type WorkloadReport struct {
	Workload    string
	Counters    fleet.Counters
	Pods        uint32
	DesiredPods uint32
	// Signals is what this node's kernel saw of the API server's answers to this workload during the second
	// (api.WorkloadDelta.response_latency and .outcomes); nil when the agent did not report them.
	Signals *headroom.NodeSignals
}

// Report is a validated node report for one second.
type Report struct {
	Node      string
	Second    int64
	Sequence  uint64
	Workloads []WorkloadReport
	// Closed loop: what the node enforces and refuses (closedloop.go).
	Blocked []BlockedReport
	Refused []RefusalReport
}

// Engine is safe for concurrent use.
type Engine struct {
	mu    sync.Mutex
	fleet *fleet.Fleet
	det   *detect.Detector
	sw    *killswitch.Switch
	res   detect.Result
	sink  Sink
	// decisions counts the decisions per action and workload (fanout_decisions_total), bounded (decisions.go).
	decisions *decisionCounts
	hr        *headroom.Estimator
	est       headroom.Estimate
	// nodeSig sums the nodes' signals per open second (same ring as the fleet's windows).
	nodeSig [8]struct {
		sec int64
		sig headroom.NodeSignals
	}
	// Closed loop (closedloop.go): coverage of each trip, and the restart sync.
	cover     map[string]*coverage
	unsynced  bool
	syncUntil int64
}

// New returns an engine; sink may be nil. An invalid headroom config (see Config.Validate) falls back to the
// defaults.
func New(cfg Config, sink Sink) *Engine {
	hr, err := headroom.New(cfg.Headroom)
	if err != nil {
		hr, _ = headroom.New(headroom.DefaultConfig())
	}
	e := &Engine{
		fleet: fleet.New(cfg.Fleet), det: detect.New(cfg.Detect), sw: killswitch.New(cfg.Switch),
		sink: sink, decisions: newDecisionCounts(MaxDecisionWorkloads), hr: hr, est: hr.Estimate(), cover: map[string]*coverage{},
	}
	for i := range e.nodeSig {
		e.nodeSig[i].sec = -1
	}
	return e
}

// ObserveAPIServer feeds one scrape of one API server replica to the headroom estimator (used at the next closed
// second).
func (e *Engine) ObserveAPIServer(s headroom.APIServerSample) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.hr.ObserveAPIServer(s); err != nil {
		return fmt.Errorf("observe api server: %w", err)
	}
	return nil
}

// Headroom returns the headroom estimate the detector used for the last closed second (the capacity flags' when
// they are set).
func (e *Engine) Headroom() headroom.Estimate {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.est
}

// SaveHeadroom writes the estimator's learned state to path atomically.
func (e *Engine) SaveHeadroom(path string, now time.Time) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hr.Save(path, now)
}

// RestoreHeadroom loads the estimator's state from path; a missing file is a cold start (false, nil).
func (e *Engine) RestoreHeadroom(path string, now time.Time) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ok, err := e.hr.Restore(path, now)
	if ok {
		e.est = e.hr.Estimate()
	}
	return ok, err
}

// addSignals adds one workload's node signals to the second's fleet-wide sum.
func (e *Engine) addSignals(sec int64, sig *headroom.NodeSignals) {
	slot := &e.nodeSig[sec%int64(len(e.nodeSig))]
	if slot.sec != sec {
		slot.sec, slot.sig = sec, headroom.NodeSignals{}
	}
	slot.sig.Merge(sig)
}

// takeSignals returns the nodes' signals of a closing second.
func (e *Engine) takeSignals(sec int64) *headroom.NodeSignals {
	slot := &e.nodeSig[sec%int64(len(e.nodeSig))]
	if slot.sec != sec {
		return nil
	}
	slot.sec = -1
	return &slot.sig
}

// Protect marks a workload as never blocked.
func (e *Engine) Protect(workload string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sw.Protect(workload)
}

// Start fixes the first second the engine will close; reports before it are late.
func (e *Engine) Start(sec int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fleet.Start(sec)
}

// Ingest adds one report.
func (e *Engine) Ingest(r *Report) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := e.fleet.Node(r.Node)
	if err := e.fleet.AddNode(r.Second, n, r.Sequence); err != nil {
		return fmt.Errorf("ingest report from %s: %w", r.Node, err)
	}
	for i := range r.Workloads {
		w := &r.Workloads[i]
		e.fleet.Add(r.Second, n, fleet.Sample{Workload: e.fleet.Workload(w.Workload), Counters: w.Counters, Pods: w.Pods, DesiredPods: w.DesiredPods})
		if w.Signals != nil {
			e.addSignals(r.Second, w.Signals)
		}
	}
	e.closedLoop(r)
	return nil
}

// Batch gives direct, ID-based access for fast simulated ingest (replay); fn runs under the engine's lock.
func (e *Engine) Batch(fn func(b *Batcher)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(&Batcher{f: e.fleet, e: e})
}

// Batcher adds samples by interned IDs.
type Batcher struct {
	f *fleet.Fleet
	e *Engine
}

// AddSignals adds what nodes saw of the API server's answers during a second (already summed over nodes).
func (b *Batcher) AddSignals(sec int64, sig *headroom.NodeSignals) { b.e.addSignals(sec, sig) }

// Workload interns a workload name.
func (b *Batcher) Workload(name string) fleet.WorkloadID { return b.f.Workload(name) }

// Node interns a node name.
func (b *Batcher) Node(name string) fleet.NodeID { return b.f.Node(name) }

// AddNode registers a node's report for a second.
func (b *Batcher) AddNode(sec int64, n fleet.NodeID) error { return b.f.AddNode(sec, n, 0) }

// Add adds one sample.
func (b *Batcher) Add(sec int64, n fleet.NodeID, s fleet.Sample) { b.f.Add(sec, n, s) }

// LastClosed returns the last closed second.
func (e *Engine) LastClosed() (int64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.fleet.LastClosed()
}

// CloseThrough closes every second up to and including sec and returns the decisions taken.
func (e *Engine) CloseThrough(sec int64) []killswitch.Decision {
	e.mu.Lock()
	defer e.mu.Unlock()
	last, ok := e.fleet.LastClosed()
	if !ok {
		return nil
	}
	var out []killswitch.Decision
	for s := last + 1; s <= sec; s++ {
		// While the API server is overloaded (as of the last closed second) no baseline learns: what runs now is not
		// what is normal.
		e.fleet.PauseBaselines(e.res.PauseBaselines)
		e.fleet.PauseArrivedBaselines(e.res.PauseArrivedBaselines)
		snap := e.fleet.Close()
		e.est = e.headroomStep(snap)
		e.det.SetEstimate(e.est)
		e.det.Evaluate(snap, &e.res)
		// Until the trip state is rebuilt after a (re)start, nothing trips or releases.
		var ds []killswitch.Decision
		if !e.unsynced {
			ds = e.sw.Step(&e.res)
		}
		for i := range ds {
			ds[i].Reason += headroomNote(&e.res)
		}
		for _, d := range ds {
			e.record(d)
		}
		ds = append(ds, e.stepClosedLoop(s)...)
		out = append(out, ds...)
		if len(ds) > 0 {
			e.syncFreeze()
		}
		e.pruneDecisions()
	}
	return out
}

// headroomNote is the estimate a decision was taken with, as its reason quotes it.
func headroomNote(r *detect.Result) string {
	if r.Headroom.Known() {
		return "; headroom: " + r.Headroom.String()
	}
	return fmt.Sprintf("; headroom unknown (no API server metrics fitted, no capacity flag): fleet %.0f req/s, %s/s vs baseline %.0f req/s, %s/s (%+.0f%%)",
		r.Total.Requests, mb(r.Total.RxBytes), r.FleetBase.Requests, mb(r.FleetBase.RxBytes), r.FleetRise*100)
}

func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }

// headroomStep feeds the closed second to the estimator and returns the estimate in force: the capacity flags'
// when set (an override), else what was learned.
func (e *Engine) headroomStep(snap *fleet.Snapshot) headroom.Estimate {
	learned := e.hr.Step(time.Unix(snap.Second, 0), headroom.Load{Requests: snap.Total.Requests, RxBytes: snap.Total.RxBytes}, e.takeSignals(snap.Second))
	cfg := e.det.Config()
	if cfg.CapacityRequestsPerS > 0 || cfg.CapacityRxBytesPerS > 0 {
		f := headroom.Flag(cfg.CapacityRequestsPerS, cfg.CapacityRxBytesPerS)
		f.Time = learned.Time
		f.UtilizationSeats, f.UtilizationLatency, f.UtilizationNodes = learned.UtilizationSeats, learned.UtilizationLatency, learned.UtilizationNodes
		f.APIServerFresh, f.LastAPIServerSample = learned.APIServerFresh, learned.LastAPIServerSample
		return f
	}
	return learned
}

func (e *Engine) record(d killswitch.Decision) {
	e.decisions.add(d.Action, d.Workload)
	if e.sink != nil {
		e.sink.Record(d)
	}
}

// pruneDecisions bounds the decision counts kept by name; a workload in any kill-switch state but observe keeps its
// name. Called after each closed second and after decisions taken outside one (manual, adopted).
func (e *Engine) pruneDecisions() {
	e.decisions.prune(func(w string) bool {
		s, _, _ := e.sw.StateOf(w)
		return s != killswitch.Observe
	})
}

func (e *Engine) syncFreeze() {
	tripped := map[string]bool{}
	for _, w := range e.sw.Blocking() {
		tripped[w] = true
		e.fleet.Workload(w)
	}
	for _, w := range e.res.Findings {
		e.fleet.Freeze(w.ID, tripped[w.Workload])
	}
	for w := range tripped {
		e.fleet.Freeze(e.fleet.Workload(w), true)
	}
}

// Manual trips or releases a workload by hand at second sec.
func (e *Engine) Manual(sec int64, trip bool, workload, reason string, ttl time.Duration) (killswitch.Decision, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d, err := e.sw.Manual(sec, trip, workload, reason, ttl)
	if err != nil {
		return d, fmt.Errorf("manual %s: %w", map[bool]string{true: "trip", false: "release"}[trip], err)
	}
	e.record(d)
	e.syncFreeze()
	e.pruneDecisions()
	return d, nil
}

// Directives returns the directive set version and the directives.
func (e *Engine) Directives() (uint64, []killswitch.Directive) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sw.Version(), e.sw.Directives()
}

// DirectivesVersion returns the version of the directive set without copying it.
func (e *Engine) DirectivesVersion() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sw.Version()
}
