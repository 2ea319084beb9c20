package fleet

import (
	"sort"
	"sync"
)

// Sample is one pod's report for one second, as podload printed it.
type Sample struct {
	T      float64 `json:"t"`
	OK     int64   `json:"ok"`
	Err    int64   `json:"err"`
	Denied int64   `json:"denied"`
	Items  int64   `json:"items"`
	Bytes  int64   `json:"bytes"`
	// LastErr is the last error the pod saw in the interval.
	LastErr string `json:"last_err,omitempty"`
}

// Point is a workload's fleet-wide total for one whole second (unix seconds).
type Point struct {
	Sec    int64
	OK     int64
	Err    int64
	Denied int64
	Items  int64
	Bytes  int64
}

// Attempts is every call the workload tried in that second.
func (p Point) Attempts() int64 { return p.OK + p.Err + p.Denied }

// Recorder sums pods' reports per workload per second: the workloads' own account of what they did, the ground truth
// the e2e compares fanout's in-kernel counts and decisions against.
type Recorder struct {
	mu      sync.Mutex
	series  map[string]map[int64]*Point
	lastErr map[string]string
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{series: map[string]map[int64]*Point{}, lastErr: map[string]string{}}
}

// Add records one pod's sample for a workload.
func (r *Recorder) Add(workload string, s Sample) {
	sec := int64(s.T - 0.5) // a sample covers the ~1 s ending at T: bucket it by the second holding its midpoint
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.series[workload]
	if m == nil {
		m = map[int64]*Point{}
		r.series[workload] = m
	}
	p := m[sec]
	if p == nil {
		p = &Point{Sec: sec}
		m[sec] = p
	}
	p.OK += s.OK
	p.Err += s.Err
	p.Denied += s.Denied
	p.Items += s.Items
	p.Bytes += s.Bytes
	if s.LastErr != "" {
		r.lastErr[workload] = s.LastErr
	}
}

// Workloads lists the workloads seen, sorted.
func (r *Recorder) Workloads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := make([]string, 0, len(r.series))
	for w := range r.series {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	return ws
}

// Series returns a workload's points in time order.
func (r *Recorder) Series(workload string) []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.series[workload]
	ps := make([]Point, 0, len(m))
	for _, p := range m {
		ps = append(ps, *p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Sec < ps[j].Sec })
	return ps
}

// LastErr is the most recent error a workload's pods reported.
func (r *Recorder) LastErr(workload string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr[workload]
}

// Sum totals a workload's points with from <= Sec < to.
func (r *Recorder) Sum(workload string, from, to int64) Point {
	var t Point
	for _, p := range r.Series(workload) {
		if p.Sec >= from && p.Sec < to {
			t.OK += p.OK
			t.Err += p.Err
			t.Denied += p.Denied
			t.Items += p.Items
			t.Bytes += p.Bytes
		}
	}
	return t
}
