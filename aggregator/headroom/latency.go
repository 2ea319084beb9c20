package headroom

import (
	"fmt"
	"math"
	"sort"
)

// KeyedLatency is the API server's request duration for one kind of request (verb, resource, scope) over one scrape
// interval. Kinds are compared only with themselves: a LIST of every pod is slow at rest and a GET is fast, so a shift
// in the mix of requests moves no kind's latency against its own baseline, while contention moves all of them.
type KeyedLatency struct {
	Key   string
	Count float64 // observations in the interval
	Mean  float64 // seconds
}

// Bounds on keyed latencies.
const (
	// MaxLatencyKeys bounds the kinds one sample may carry and the baselines the estimator keeps;
	// MaxLatencyKeyBytes a kind's name.
	MaxLatencyKeys     = 1024
	MaxLatencyKeyBytes = 256
)

func validateKeyed(replica string, ks []KeyedLatency) error {
	if len(ks) > MaxLatencyKeys {
		return fmt.Errorf("api server sample from %q: %d latency kinds, more than %d", replica, len(ks), MaxLatencyKeys)
	}
	for _, k := range ks {
		if len(k.Key) > MaxLatencyKeyBytes {
			return fmt.Errorf("api server sample from %q: latency kind longer than %d bytes", replica, MaxLatencyKeyBytes)
		}
		if !finite(k.Count) || k.Count < 0 || k.Count > maxRejected || !finite(k.Mean) || k.Mean < 0 || k.Mean > maxSeconds {
			return fmt.Errorf("api server sample from %q: latency of %q out of range (count %v, mean %v)", replica, k.Key, k.Count, k.Mean)
		}
	}
	return nil
}

// baselines learns each request kind's duration at rest: it follows a faster answer quickly and a slower one only
// slowly and only while the API server is not busy, so an overload does not become the new normal, while a lasting
// change (more objects per LIST, a new version) is learned over tens of minutes of calm.
type baselines struct {
	base map[string]*keyBase
	tick int64
}

type keyBase struct {
	s    float64 // seconds
	seen int64   // tick of the last observation, for eviction
	n    int     // readings folded in; the kind says nothing until baseWarm
}

const (
	baseDown = 0.3  // share of the gap closed per observation below the baseline
	baseUp   = 0.02 // share of the gap closed per calm observation above it
	// busyInflation: latency this many times its baseline (count-weighted geometric mean over kinds) means busy.
	busyInflation = 1.5
	// baseWarm: a kind's first readings set its baseline both ways (an API server just started, a cold cache) and
	// count for nothing; from then on it is compared and follows the asymmetric rule.
	baseWarm = 3
	// minLatencyWeight: fewer observations than this in a reading (over the warm kinds) say nothing about latency.
	// Kept low: a saturated API server completes few requests per reading, and those are the readings that matter.
	minLatencyWeight = 5
)

func newBaselines() baselines { return baselines{base: map[string]*keyBase{}} }

// observe folds one interval's latencies in and returns the inflation (count-weighted geometric mean of latency over
// its baseline, over the kinds that have a baseline) and the weight it rests on (0: nothing to say). busy (the seats
// say the API server is loaded) holds the baselines from rising.
func (b *baselines) observe(ks []KeyedLatency, busy bool) (inflation, weight float64) {
	b.tick++
	var logSum float64
	for _, k := range ks {
		if k.Count <= 0 || k.Mean <= 0 {
			continue
		}
		if kb := b.base[k.Key]; kb != nil && kb.s > 0 && kb.n >= baseWarm {
			logSum += k.Count * math.Log(k.Mean/kb.s)
			weight += k.Count
		}
	}
	inflation = 1
	if weight > 0 {
		inflation = math.Exp(logSum / weight)
	}
	if weight < minLatencyWeight {
		inflation, weight = 1, 0
	}
	busy = busy || inflation >= busyInflation
	for _, k := range ks {
		if k.Count <= 0 || k.Mean <= 0 {
			continue
		}
		kb := b.base[k.Key]
		if kb == nil {
			if busy && weight > 0 {
				// A kind first seen while the known ones are slow (a rollout's new requests) would take the overload
				// as its normal and dilute the inflation: it waits for a calm reading.
				continue
			}
			if len(b.base) >= MaxLatencyKeys {
				b.evictOldest()
			}
			kb = &keyBase{s: k.Mean}
			b.base[k.Key] = kb
		}
		kb.seen = b.tick
		kb.n++
		switch {
		case kb.n <= baseWarm:
			kb.s += baseDown * (k.Mean - kb.s)
		case k.Mean < kb.s:
			kb.s += baseDown * (k.Mean - kb.s)
		case !busy:
			kb.s += baseUp * (k.Mean - kb.s)
		}
	}
	return inflation, weight
}

func (b *baselines) evictOldest() {
	oldest, t := "", int64(math.MaxInt64)
	for k, kb := range b.base {
		if kb.seen < t || kb.seen == t && k < oldest {
			oldest, t = k, kb.seen
		}
	}
	delete(b.base, oldest)
}

// snapshot returns the baselines for the state file, at most MaxLatencyKeys.
func (b *baselines) snapshot() map[string]float64 {
	out := make(map[string]float64, len(b.base))
	for k, kb := range b.base {
		out[k] = kb.s
	}
	return out
}

// restore replaces the baselines; invalid entries reject the whole set.
func (b *baselines) restore(m map[string]float64) error {
	if len(m) > MaxLatencyKeys {
		return fmt.Errorf("%d latency baselines, more than %d", len(m), MaxLatencyKeys)
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if len(k) > MaxLatencyKeyBytes || !finite(v) || v < 0 || v > maxSeconds {
			return fmt.Errorf("latency baseline %q = %v invalid", k, v)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.base = make(map[string]*keyBase, len(m))
	for _, k := range keys {
		b.base[k] = &keyBase{s: m[k], n: baseWarm}
	}
	return nil
}

// inflationUtil maps latency inflation to a utilization as a single processor-sharing server would show it
// (latency = service time / (1 - u)). A server with many cores queues later, so this is a lower bound on its
// utilization: near saturation, where it matters, the two meet.
func inflationUtil(inflation float64) float64 {
	if !(inflation > 0) {
		return -1
	}
	return math.Max(0, 1-1/inflation)
}
