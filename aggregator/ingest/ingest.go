package ingest

import (
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/api"
)

// Limits on one report.
const (
	MaxPods      = 10_000
	MaxWorkloads = 5_000
	MaxBlocked   = 1_000
	MaxCounter   = 1e12
	MaxInterval  = 10 * time.Second
	// MinRateInterval: counters are turned into per-second rates over at least this long, so a tiny interval cannot
	// scale them up (a 1 ns interval once made 1e21 req/s).
	MinRateInterval = 500 * time.Millisecond
	MaxRefused      = 1_000
	// MaxResponses bounds the API-server answers one report may time (summed over its workloads), and
	// MaxResponseLatency one answer's time to first byte: a fleet of 10,000 such reports still sums without
	// overflow. MaxOutcomes bounds each connection-outcome count of one report.
	MaxResponses       = 1_000_000
	MaxResponseLatency = 10 * time.Minute
	MaxOutcomes        = 1_000_000
	maxNameLen         = 253
	maxReasonLen       = 128
	// Unattributed is the bucket a node's pods without a workload are folded into.
	Unattributed = "Unknown//unattributed"
)

var (
	nodeName     = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	workloadName = regexp.MustCompile(`^[A-Z][A-Za-z]{0,62}/[a-z0-9.-]{0,253}/[A-Za-z0-9._:@\\-]{1,253}$`)
)

// FieldError is a validation error naming the field.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func bad(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ValidWorkload reports whether s is a workload identity Kind/namespace/name.
func ValidWorkload(s string) bool { return len(s) <= 3*maxNameLen && workloadName.MatchString(s) }

// ValidNode reports whether s is a usable node name.
func ValidNode(s string) bool { return len(s) <= maxNameLen && nodeName.MatchString(s) }

func counters(c *api.Counters, field string, scale float64) (fleet.Counters, error) {
	if c == nil {
		return fleet.Counters{}, nil
	}
	for _, f := range []struct {
		name string
		v    uint64
	}{{"connects", c.GetConnects()}, {"requests", c.GetRequests()}, {"tx_bytes", c.GetTxBytes()}, {"rx_bytes", c.GetRxBytes()}} {
		if float64(f.v) > MaxCounter {
			return fleet.Counters{}, bad(field+"."+f.name, "%d exceeds %g", f.v, MaxCounter)
		}
	}
	return fleet.Counters{
		Connects: float64(c.GetConnects()) * scale, Requests: float64(c.GetRequests()) * scale,
		TxBytes: float64(c.GetTxBytes()) * scale, RxBytes: float64(c.GetRxBytes()) * scale,
	}, nil
}

// Second returns the one-second window a report belongs to: the second its interval mostly covers.
func Second(ts time.Time, interval time.Duration) int64 {
	mid := ts.Add(-interval / 2)
	return int64(math.Floor(float64(mid.UnixNano()) / 1e9))
}

// Convert validates r and returns the engine report. Counters covering more or less than one second are scaled to
// one second. Per-workload totals come from r.Workloads when present, else from the pods.
func Convert(r *api.NodeReport) (*engine.Report, error) {
	if r == nil {
		return nil, bad("report", "missing")
	}
	if !ValidNode(r.GetNode()) {
		return nil, bad("node", "want a node name (lowercase RFC 1123), got %q", trunc(r.GetNode()))
	}
	if r.GetSequence() == 0 {
		return nil, bad("sequence", "must be > 0")
	}
	if r.GetTimestamp() == nil {
		return nil, bad("timestamp", "missing")
	}
	if err := r.GetTimestamp().CheckValid(); err != nil {
		return nil, bad("timestamp", "%v", err)
	}
	interval := time.Second
	if r.GetInterval() != nil {
		if err := r.GetInterval().CheckValid(); err != nil {
			return nil, bad("interval", "%v", err)
		}
		interval = r.GetInterval().AsDuration()
		if interval <= 0 || interval > MaxInterval {
			return nil, bad("interval", "%s out of range (0, %s]", interval, MaxInterval)
		}
	}
	if len(r.GetPods()) > MaxPods {
		return nil, bad("pods", "%d pods exceed %d", len(r.GetPods()), MaxPods)
	}
	if len(r.GetWorkloads()) > MaxWorkloads {
		return nil, bad("workloads", "%d workloads exceed %d", len(r.GetWorkloads()), MaxWorkloads)
	}
	if len(r.GetBlocked()) > MaxBlocked {
		return nil, bad("blocked", "%d entries exceed %d", len(r.GetBlocked()), MaxBlocked)
	}
	if len(r.GetRefused()) > MaxRefused {
		return nil, bad("refused", "%d entries exceed %d", len(r.GetRefused()), MaxRefused)
	}
	scale := float64(time.Second) / float64(max(interval, MinRateInterval))
	out := &engine.Report{Node: r.GetNode(), Sequence: r.GetSequence(), Second: Second(r.GetTimestamp().AsTime(), interval)}
	index := make(map[string]int, len(r.GetWorkloads()))
	var timed signalTotals
	for i, w := range r.GetWorkloads() {
		field := fmt.Sprintf("workloads[%d]", i)
		if !ValidWorkload(w.GetWorkload()) {
			return nil, bad(field+".workload", "want Kind/namespace/name, got %q", trunc(w.GetWorkload()))
		}
		if _, dup := index[w.GetWorkload()]; dup {
			return nil, bad(field+".workload", "duplicate %q", w.GetWorkload())
		}
		c, err := counters(w.GetDelta(), field+".delta", scale)
		if err != nil {
			return nil, err
		}
		if w.GetPods() > MaxPods {
			return nil, bad(field+".pods", "%d exceeds %d", w.GetPods(), MaxPods)
		}
		sig, err := timed.signals(w, field)
		if err != nil {
			return nil, err
		}
		index[w.GetWorkload()] = len(out.Workloads)
		out.Workloads = append(out.Workloads, engine.WorkloadReport{Workload: w.GetWorkload(), Counters: c, Pods: w.GetPods(),
			DesiredPods: w.GetDesiredPods(), Signals: sig})
	}
	fromPods := len(r.GetWorkloads()) == 0
	uids := make(map[string]bool, len(r.GetPods()))
	for i, p := range r.GetPods() {
		field := fmt.Sprintf("pods[%d]", i)
		if p.GetUid() == "" || len(p.GetUid()) > maxNameLen {
			return nil, bad(field+".uid", "want a pod UID, got %q", trunc(p.GetUid()))
		}
		if uids[p.GetUid()] {
			return nil, bad(field+".uid", "duplicate %q", p.GetUid())
		}
		uids[p.GetUid()] = true
		if len(p.GetNamespace()) > maxNameLen || len(p.GetName()) > maxNameLen {
			return nil, bad(field+".name", "namespace or name too long")
		}
		wl := p.GetWorkload()
		if wl == "" {
			// A pod whose owner the agent has not resolved: one bucket per node, not a name per pod.
			wl = Unattributed
		} else if !ValidWorkload(wl) {
			return nil, bad(field+".workload", "want Kind/namespace/name, got %q", trunc(wl))
		}
		c, err := counters(p.GetDelta(), field+".delta", scale)
		if err != nil {
			return nil, err
		}
		i, ok := index[wl]
		if !ok {
			if !fromPods {
				return nil, bad(field+".workload", "%q is not in workloads", wl)
			}
			if len(out.Workloads) >= MaxWorkloads {
				// The pods may not name more workloads than the workloads list may.
				return nil, bad(field+".workload", "pods name more than %d workloads", MaxWorkloads)
			}
			i = len(out.Workloads)
			index[wl] = i
			out.Workloads = append(out.Workloads, engine.WorkloadReport{Workload: wl})
		}
		if fromPods {
			w := &out.Workloads[i]
			w.Counters.Connects += c.Connects
			w.Counters.Requests += c.Requests
			w.Counters.TxBytes += c.TxBytes
			w.Counters.RxBytes += c.RxBytes
			w.Pods++
		}
	}
	for i, b := range r.GetBlocked() {
		if !ValidWorkload(b.GetWorkload()) {
			return nil, bad(fmt.Sprintf("blocked[%d].workload", i), "want Kind/namespace/name, got %q", trunc(b.GetWorkload()))
		}
		out.Blocked = append(out.Blocked, engine.BlockedReport{Workload: b.GetWorkload(), Epoch: b.GetEpoch(),
			Releasing: b.GetReleasing(), BreakGlass: b.GetBreakGlass()})
	}
	for i, f := range r.GetRefused() {
		if !ValidWorkload(f.GetWorkload()) {
			return nil, bad(fmt.Sprintf("refused[%d].workload", i), "want Kind/namespace/name, got %q", trunc(f.GetWorkload()))
		}
		out.Refused = append(out.Refused, engine.RefusalReport{Workload: f.GetWorkload(), Epoch: f.GetEpoch(), Reason: reason(f.GetReason())})
	}
	if h := r.GetHealth(); h != nil && len(h.GetVersion()) > maxNameLen {
		return nil, bad("health.version", "longer than %d bytes", maxNameLen)
	}
	return out, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// reason keeps a refusal reason short and printable.
func reason(s string) string {
	if len(s) > maxReasonLen {
		s = s[:maxReasonLen]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) == 0 {
		return "unspecified"
	}
	return string(b)
}
