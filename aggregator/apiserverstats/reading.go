package apiserverstats

import (
	"math"
	"sort"
	"time"
)

// LevelReading is one non-exempt priority level over one interval.
type LevelReading struct {
	Name string
	// Gauges at the end of the interval.
	ExecutingSeats, NominalSeats, Inqueue float64
	// Deltas over the interval (zero when Reading.Deltas is false).
	Rejected           float64
	WaitCount, WaitSum float64
}

// Reading is what one API server replica said over one interval: flow-control gauges at its end, counter and
// histogram deltas over it, summed over the non-exempt priority levels.
type Reading struct {
	// Replica names the source (the URL's host:port, or Prometheus' instance label).
	Replica string
	At      time.Time
	// Interval is the time since the previous reading of this replica (0 for the first).
	Interval time.Duration
	// Gauges summed over the non-exempt levels that report a limit.
	ExecutingSeats, NominalSeats, Inqueue float64
	// Deltas is false for a replica's first reading and after a counter reset (a restarted API server): the
	// gauges are valid, the deltas below are zero.
	Deltas bool
	// Rejected requests (all reasons) over the interval; RejectedTotal is the cumulative counter.
	Rejected, RejectedTotal float64
	// Wait is the flow-control queue wait of executed requests; Latency is apiserver_request_duration_seconds over
	// every non-long-running verb.
	Wait, Latency Histogram
	// Kinds is Latency per kind of request (only kinds with observations in the interval), sorted by key.
	Kinds  []KindReading
	Levels []LevelReading
	// Series and Skipped: see Page.
	Series, Skipped int
}

// KindReading is one kind of request's observations over one interval.
type KindReading struct {
	Key        string
	Count, Sum float64
}

// Utilization is executing seats over nominal seats (0 when no limit is known).
func (r *Reading) Utilization() float64 {
	if r.NominalSeats <= 0 {
		return 0
	}
	return r.ExecutingSeats / r.NominalSeats
}

// NewReading turns the page read at now, and the replica's previous page (nil for none) read at prevAt, into a
// reading.
func NewReading(replica string, now time.Time, cur *Page, prevAt time.Time, prev *Page) Reading {
	r := Reading{Replica: replica, At: now, Series: cur.Series, Skipped: cur.Skipped}
	if prev != nil {
		r.Interval = now.Sub(prevAt)
	}
	reset := false
	for i := range cur.Levels {
		lv := &cur.Levels[i]
		lr := LevelReading{Name: lv.Name, ExecutingSeats: lv.ExecutingSeats, NominalSeats: lv.NominalSeats, Inqueue: lv.Inqueue}
		if lv.hasNominal || lv.NominalSeats > 0 {
			r.ExecutingSeats += lv.ExecutingSeats
			r.NominalSeats += lv.NominalSeats
		}
		r.Inqueue += lv.Inqueue
		r.RejectedTotal += lv.Rejected
		if prev != nil {
			// A level new since the previous page counts from zero.
			var pw Histogram
			var prej float64
			if pl := prev.Level(lv.Name); pl != nil {
				pw, prej = pl.Wait, pl.Rejected
			}
			lr.Rejected = lv.Rejected - prej
			lr.WaitCount, lr.WaitSum = lv.Wait.Count-pw.Count, lv.Wait.Sum-pw.Sum
			if lr.Rejected < 0 || lr.WaitCount < 0 {
				reset = true
			}
			d, ok := lv.Wait.Sub(pw)
			if !ok {
				reset = true
			}
			r.Wait = r.Wait.merge(d)
			r.Rejected += lr.Rejected
		}
		r.Levels = append(r.Levels, lr)
	}
	if prev != nil {
		d, ok := cur.RequestDuration.Sub(prev.RequestDuration)
		if !ok {
			reset = true
		}
		r.Latency = d
		for k, c := range cur.Kinds {
			p := prev.Kinds[k] // a kind new since the previous page counts from zero
			dc, ds := c.Count-p.Count, c.Sum-p.Sum
			if dc < 0 || ds < -1e-9 {
				reset = true
				continue
			}
			if dc > 0 {
				r.Kinds = append(r.Kinds, KindReading{Key: k, Count: dc, Sum: math.Max(0, ds)})
			}
		}
		sort.Slice(r.Kinds, func(i, j int) bool { return r.Kinds[i].Key < r.Kinds[j].Key })
	}
	r.Deltas = prev != nil && !reset && r.Interval > 0
	if !r.Deltas {
		r.Rejected, r.Wait, r.Latency, r.Kinds = 0, Histogram{}, Histogram{}, nil
		for i := range r.Levels {
			r.Levels[i].Rejected, r.Levels[i].WaitCount, r.Levels[i].WaitSum = 0, 0, 0
		}
	}
	return r
}

// Sub returns h - prev bucket by bucket (buckets matched by bound; a bound missing in prev counts from zero); false
// when a count went down (a reset).
func (h Histogram) Sub(prev Histogram) (Histogram, bool) {
	d := Histogram{Bounds: append([]float64(nil), h.Bounds...), Counts: make([]float64, len(h.Counts)), Count: h.Count - prev.Count, Sum: h.Sum - prev.Sum}
	ok := d.Count >= 0 && d.Sum >= -1e-9
	j := 0
	for i, b := range h.Bounds {
		for j < len(prev.Bounds) && prev.Bounds[j] < b {
			j++
		}
		c := h.Counts[i]
		if j < len(prev.Bounds) && prev.Bounds[j] == b {
			c -= prev.Counts[j]
		}
		if c < 0 {
			ok = false
		}
		d.Counts[i] = c
	}
	return d, ok
}

// merge adds two histograms bucket by bucket.
func (h Histogram) merge(o Histogram) Histogram {
	if len(h.Bounds) == 0 && h.Count == 0 {
		return Histogram{Bounds: append([]float64(nil), o.Bounds...), Counts: append([]float64(nil), o.Counts...), Count: o.Count, Sum: o.Sum}
	}
	a := histAcc{bounds: h.Bounds, counts: h.Counts, count: h.Count, sum: h.Sum}
	for i, b := range o.Bounds {
		k := 0
		for k < len(a.bounds) && a.bounds[k] < b {
			k++
		}
		if k < len(a.bounds) && a.bounds[k] == b {
			a.counts[k] += o.Counts[i]
			continue
		}
		a.bounds = append(a.bounds, 0)
		a.counts = append(a.counts, 0)
		copy(a.bounds[k+1:], a.bounds[k:])
		copy(a.counts[k+1:], a.counts[k:])
		a.bounds[k], a.counts[k] = b, o.Counts[i]
	}
	a.count += o.Count
	a.sum += o.Sum
	return a.histogram()
}

// Mean is the mean observation (0 without observations).
func (h Histogram) Mean() float64 {
	if h.Count <= 0 {
		return 0
	}
	return h.Sum / h.Count
}

// Quantile estimates the q-quantile by linear interpolation within the bucket (as PromQL's histogram_quantile);
// NaN without observations, the highest finite bound when it falls in the +Inf bucket.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count <= 0 || len(h.Bounds) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for i, b := range h.Bounds {
		c := h.Counts[i]
		if c >= rank {
			if c == below {
				return b
			}
			return lower + (b-lower)*(rank-below)/(c-below)
		}
		lower, below = b, c
	}
	return h.Bounds[len(h.Bounds)-1]
}

// FractionAbove is the share of observations above bound (using the smallest histogram bound >= bound).
func (h Histogram) FractionAbove(bound float64) float64 {
	if h.Count <= 0 {
		return 0
	}
	for i, b := range h.Bounds {
		if b >= bound {
			return math.Max(0, 1-h.Counts[i]/h.Count)
		}
	}
	return 0
}
