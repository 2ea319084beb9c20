package headroom

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1764547200, 0)

// world is a constructed API server: it saturates on requests or bytes, whichever runs out first, and shows that
// as executing seats (with Poisson-like noise) out of a fixed limit, plus a latency rising with utilization.
type world struct {
	capR, capX float64
	limit      float64
	rng        *rand.Rand
}

func (w *world) util(l Load) float64 { return math.Max(l.Requests/w.capR, l.RxBytes/w.capX) }

func (w *world) sample(at time.Time, l Load) APIServerSample {
	u := w.util(l)
	exec := math.Min(w.limit, math.Max(0, u*w.limit+math.Sqrt(u*w.limit)*w.rng.NormFloat64()))
	inq := 0.0
	if u > 1 {
		inq = (u - 1) * w.limit
	}
	d := 0.05 / math.Max(0.03, 1-math.Min(u, 0.97))
	return APIServerSample{Time: at, Replica: "10.0.0.1:6443", ExecutingSeats: exec, LimitSeats: w.limit, InQueue: inq,
		Duration: Summary{Count: l.Requests * 5, Mean: d, P99: 5 * d}}
}

// run drives an estimator for secs seconds with load(t), one scrape every 5 s.
func run(t *testing.T, e *Estimator, w *world, from, secs int, load func(int) Load) Estimate {
	t.Helper()
	var est Estimate
	for s := from; s < from+secs; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		l := load(s)
		if s%5 == 0 && w != nil {
			if err := e.ObserveAPIServer(w.sample(now, l)); err != nil {
				t.Fatal(err)
			}
		}
		est = e.Step(now, l, nil)
	}
	return est
}

func newEst(t *testing.T) *Estimator {
	t.Helper()
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func within(got, want, tol float64) bool { return math.Abs(got-want) <= tol*want }

// A request-bound API server under a varying load: the request capacity is found, the byte capacity follows the
// prior but never below the bytes already seen.
func TestLearnsRequestCapacity(t *testing.T) {
	e := newEst(t)
	w := &world{capR: 3000, capX: 1.5e9, limit: 600, rng: rand.New(rand.NewPCG(1, 2))}
	if est := e.Estimate(); est.Known() {
		t.Fatalf("cold estimator claims a capacity: %+v", est)
	}
	est := run(t, e, w, 0, 900, func(s int) Load {
		r := 1200 + 800*math.Sin(float64(s)/60)
		return Load{Requests: r, RxBytes: r * 4000}
	})
	if est.Source != SourceLearned || !within(est.CapacityRequestsPerS, 3000, 0.08) {
		t.Fatalf("request capacity: %s", est.String())
	}
	if !est.RxBytesFromPrior || !within(est.CapacityRxBytesPerS, 3000*DefaultConfig().PriorBytesPerRequest, 0.1) {
		t.Fatalf("byte capacity should follow the prior: %s", est.String())
	}
	if est.Confidence < 0.7 || est.Samples < 100 || est.UtilizationSource != FromSeats {
		t.Fatalf("confidence %.2f samples %d source %s", est.Confidence, est.Samples, est.UtilizationSource)
	}
}

// The learned capacity scales with the world's: nothing but the signals reaches the estimator.
func TestCapacityScalesWithWorld(t *testing.T) {
	var caps []float64
	for _, k := range []float64{1, 2.5} {
		e := newEst(t)
		w := &world{capR: 2000 * k, capX: 1e9 * k, limit: 600, rng: rand.New(rand.NewPCG(7, 7))}
		est := run(t, e, w, 0, 600, func(s int) Load {
			x := k * (3e8 + 4e8*float64(s)/600)
			return Load{Requests: k * 300, RxBytes: x}
		})
		if est.RxBytesFromPrior {
			t.Fatalf("bytes bind in this world: %s", est.String())
		}
		caps = append(caps, est.CapacityRxBytesPerS)
	}
	if r := caps[1] / caps[0]; math.Abs(r-2.5) > 0.2 {
		t.Fatalf("capacity ratio %.2f, want 2.5 (%v)", r, caps)
	}
}

// Bytes growing while requests bind: the byte capacity is bounded below by what was seen, then found once bytes bind.
func TestByteCrossover(t *testing.T) {
	e := newEst(t)
	w := &world{capR: 3000, capX: 4e8, limit: 600, rng: rand.New(rand.NewPCG(3, 4))}
	est := run(t, e, w, 0, 300, func(int) Load { return Load{Requests: 1800, RxBytes: 5e6} })
	if !est.RxBytesFromPrior || !within(est.CapacityRequestsPerS, 3000, 0.08) {
		t.Fatalf("flat load: %s", est.String())
	}
	est = run(t, e, w, 300, 600, func(s int) Load { return Load{Requests: 1800, RxBytes: 5e6 + 3.3e8*float64(s-300)/600} })
	if est.RxBytesFromPrior || !within(est.CapacityRxBytesPerS, 4e8, 0.1) {
		t.Fatalf("after crossover: %s", est.String())
	}
}

// When the API server's metrics stop, the last capacity stays and the nodes' latency and failures say how it is.
func TestMetricsGoneKeepsEstimate(t *testing.T) {
	e := newEst(t)
	w := &world{capR: 3000, capX: 1.5e9, limit: 600, rng: rand.New(rand.NewPCG(5, 6))}
	nodes := func(u float64, fail uint64) *NodeSignals {
		n := &NodeSignals{}
		lat := 0.002 / math.Max(0.03, 1-math.Min(u, 0.97))
		n.Latency.Add(nil, 1000, uint64(lat*1e6*1000))
		n.FailedConnects = fail
		return n
	}
	var est Estimate
	for s := 0; s < 600; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		l := Load{Requests: 900 + 600*math.Sin(float64(s)/50), RxBytes: 1e7}
		if s%5 == 0 {
			if err := e.ObserveAPIServer(w.sample(now, l)); err != nil {
				t.Fatal(err)
			}
		}
		est = e.Step(now, l, nodes(w.util(l), 0))
	}
	capR := est.CapacityRequestsPerS
	for s := 600; s < 700; s++ {
		now := t0.Add(time.Duration(s) * time.Second)
		// The load fanout sees is modest, but the API server fails the nodes' connections (e.g. a load not seen by
		// fanout, or a degraded replica): the nodes' signal wins.
		l := Load{Requests: 1000, RxBytes: 1e7}
		est = e.Step(now, l, nodes(1.2, 200))
	}
	if est.APIServerFresh || est.CapacityRequestsPerS != capR || est.UtilizationSource != FromNodes || est.Utilization < 1 {
		t.Fatalf("metrics gone: %s fresh %v source %s", est.String(), est.APIServerFresh, est.UtilizationSource)
	}
	if est.UtilizationNodes < 1 {
		t.Fatalf("node failures should say saturated: %v", est.UtilizationNodes)
	}
}

func TestSaveRestore(t *testing.T) {
	e := newEst(t)
	w := &world{capR: 3000, capX: 1.5e9, limit: 600, rng: rand.New(rand.NewPCG(9, 9))}
	est := run(t, e, w, 0, 400, func(s int) Load { return Load{Requests: 1000 + 2*float64(s), RxBytes: 1e7} })
	path := filepath.Join(t.TempDir(), "headroom.json")
	now := t0.Add(400 * time.Second)
	if err := e.Save(path, now); err != nil {
		t.Fatal(err)
	}
	e2 := newEst(t)
	ok, err := e2.Restore(path, now)
	if err != nil || !ok {
		t.Fatalf("restore: %v %v", ok, err)
	}
	got := e2.Estimate()
	if !got.Known() || math.Abs(got.CapacityRequestsPerS-est.CapacityRequestsPerS) > 1e-6*est.CapacityRequestsPerS {
		t.Fatalf("restored %s, saved %s", got.String(), est.String())
	}
	if ok, err := newEst(t).Restore(filepath.Join(t.TempDir(), "none.json"), now); ok || err != nil {
		t.Fatalf("missing file: %v %v", ok, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	for _, data := range []string{`{"version":2,"points":[]}`, `{"version":1,"points":[{"t":1,"r":-1,"x":0,"u":0.5}]}`, `{"version":1,"points":[],"calm_requests_per_s":-1}`, `{"version":1,"points":[` + strings.Repeat(`{"t":1,"r":1,"x":1,"u":0.5},`, 40000) + `]}`} {
		if err := os.WriteFile(bad, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := newEst(t).Restore(bad, now); err == nil {
			t.Fatalf("accepted bad state %.40q", data)
		}
	}
}

func TestSampleValidation(t *testing.T) {
	e := newEst(t)
	for _, s := range []APIServerSample{
		{Replica: "a", LimitSeats: 1},
		{Time: t0, Replica: "a", ExecutingSeats: math.NaN()},
		{Time: t0, Replica: "a", LimitSeats: -1},
		{Time: t0, Replica: strings.Repeat("a", 300)},
	} {
		if err := e.ObserveAPIServer(s); err == nil {
			t.Fatalf("accepted %+v", s)
		}
	}
	if err := e.ObserveAPIServer(APIServerSample{Time: t0, Replica: "a", LimitSeats: 10}); err != nil {
		t.Fatal(err)
	}
	if err := e.ObserveAPIServer(APIServerSample{Time: t0, Replica: "a", LimitSeats: 10}); err == nil {
		t.Fatal("accepted a sample not after the last")
	}
}

// hist is one second of the nodes' answers: fast answers around fast, plus slow ones (a watch stream's next event
// counted as an answer).
func hist(fast time.Duration, n uint64, slow time.Duration, m uint64) *NodeSignals {
	s := &NodeSignals{}
	var b [LatencySlots]uint64
	b[int(math.Log2(float64(fast.Microseconds())))] = n
	b[int(math.Log2(float64(slow.Microseconds())))] += m
	s.Latency.Add(b[:], n+m, n*uint64(fast.Microseconds())+m*uint64(slow.Microseconds()))
	return s
}

func TestTypicalSecondsIgnoresAFewVeryLongWaits(t *testing.T) {
	h := hist(3*time.Millisecond, 95, 10*time.Second, 5)
	if got := h.Latency.TypicalSeconds(); got < 0.002 || got > 0.0045 {
		t.Errorf("typical %v s with 95 answers at 3 ms and 5 at 10 s (mean %v s), want the 3 ms bucket", got, h.Latency.MeanSeconds())
	}
	narrow := hist(3*time.Millisecond, 100, 3*time.Millisecond, 0)
	if got := narrow.Latency.TypicalSeconds(); math.Abs(got-0.003) > 1e-9 {
		t.Errorf("typical %v s of a narrow histogram, want its mean 0.003", got)
	}
}

// With the API server's metrics gone, the nodes' latency is the signal: a calm API server whose clients also hold
// watch streams (their events read as multi-second answers) does not read as busy; a thirtyfold slowdown of the
// answers does.
func TestNodesSignalCalmWithWatchStreams(t *testing.T) {
	e := newEst(t)
	var est Estimate
	for s := 0; s < 120; s++ {
		slow := uint64(s % 7) // a few watch events a second
		est = e.Step(t0.Add(time.Duration(s)*time.Second), Load{Requests: 100}, hist(3*time.Millisecond, 100, 8*time.Second, slow))
	}
	if est.UtilizationNodes < 0 || est.UtilizationNodes > 0.5 {
		t.Fatalf("calm API server with watch streams: nodes' utilization %v, want a low reading", est.UtilizationNodes)
	}
	for s := 120; s < 130; s++ {
		est = e.Step(t0.Add(time.Duration(s)*time.Second), Load{Requests: 100}, hist(100*time.Millisecond, 100, 8*time.Second, 3))
	}
	if est.UtilizationNodes < 0.9 {
		t.Fatalf("answers 30x slower: nodes' utilization %v, want >= 0.9", est.UtilizationNodes)
	}
}

// The nodes' typical latency varies second to second (a few dozen answers): a calm API server reads well below
// busy and never as overloaded, and an overload the metrics cannot show (they are gone) stays an overload.
func TestNodesSignalNoiseAndSustainedOverload(t *testing.T) {
	e := newEst(t)
	rng := rand.New(rand.NewPCG(7, 8))
	at := func(s int, lat time.Duration) Estimate {
		n := &NodeSignals{}
		us := uint64(lat.Microseconds())
		n.Latency.Add(nil, 50, 50*us)
		return e.Step(t0.Add(time.Duration(s)*time.Second), Load{Requests: 100}, n)
	}
	var sum float64
	maxU := 0.0
	for s := 0; s < 600; s++ {
		est := at(s, time.Duration(3e6*math.Exp(0.4*rng.NormFloat64())))
		if s >= 20 {
			sum += est.UtilizationNodes
			maxU = math.Max(maxU, est.UtilizationNodes)
		}
	}
	last := e.Estimate()
	if mean := sum / 580; mean > 0.4 || maxU >= 0.9 || last.Known() {
		t.Errorf("calm, noisy: nodes' utilization mean %.2f max %.2f, capacity %s; want mean <= 0.4, never >= 0.9, no capacity", mean, maxU, last.String())
	}
	for s := 600; s < 720; s++ {
		est := at(s, 90*time.Millisecond)
		if s >= 610 && est.UtilizationNodes < 0.9 {
			t.Fatalf("%d s into an overload (answers 30x slower): nodes' utilization %.2f, want >= 0.9", s-600, est.UtilizationNodes)
		}
	}
}

// Without any API server metrics (an API server fanout cannot scrape), the capacity is learned from what the nodes'
// kernels see: answers slowing tenfold and failing as the load passes what the API server can serve.
func TestCapacityFromNodesWithoutMetrics(t *testing.T) {
	e := newEst(t)
	const capR = 600.0
	rng := rand.New(rand.NewPCG(9, 10))
	var est Estimate
	for s := 0; s < 300; s++ {
		req := 100 + 800*float64(s)/300 // past capacity from s = 188
		u := req / capR
		lat := 0.003 / math.Max(0.02, 1-math.Min(u, 0.98)) * math.Exp(0.2*rng.NormFloat64())
		n := &NodeSignals{}
		n.Latency.Add(nil, 50, uint64(50*lat*1e6))
		if u > 1 {
			n.FailedConnects = uint64(5 * (u - 1) * 50)
		}
		served := math.Min(req, capR*1.02) // a saturated API server serves what it can; closed-loop clients wait
		est = e.Step(t0.Add(time.Duration(s)*time.Second), Load{Requests: served, RxBytes: served * 2e4}, n)
		if s < 150 && est.Known() {
			t.Fatalf("capacity learned at %.0f req/s (u %.2f), below overload: %s", req, u, est.String())
		}
	}
	if !est.Known() || !within(est.CapacityRequestsPerS, capR, 0.25) {
		t.Fatalf("after the load passed capacity with no API server metrics: %s (nodes %.2f), want ~%.0f req/s", est.String(), est.UtilizationNodes, capR)
	}
}
