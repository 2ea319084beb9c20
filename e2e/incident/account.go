package incident

import (
	"fmt"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/e2e/latency"
)

// account prints one line per second: each workload's calls in the last complete second (as the pods themselves
// reported them), the unrelated client's latency over that second, and any new fanout events.
type account struct {
	cfg       Config
	res       *Result
	probe     *latency.Probe
	next      time.Time
	seenEvent int
}

func newAccount(cfg Config, res *Result, probe *latency.Probe) *account {
	return &account{cfg: cfg, res: res, probe: probe}
}

func (a *account) maybePrint(now time.Time) {
	if a.cfg.Live == nil || now.Before(a.next) {
		return
	}
	if a.next.IsZero() {
		a.next = a.res.Start
	}
	for !a.next.After(now) {
		a.next = a.next.Add(time.Second)
	}
	// Pods report once a second: the second before last is complete.
	sec := now.Unix() - 2
	var parts []string
	for _, w := range []struct{ id, short string }{{KubeProxy, "kube-proxy"}, {NodeAgent, "npd"}, {Telemetry, "telemetry"}} {
		p := a.res.Recorder.Sum(w.id, sec, sec+1)
		s := fmt.Sprintf("%s %4d/s", w.short, p.OK)
		if p.Err+p.Denied > 0 {
			s += fmt.Sprintf(" (err %d, denied %d)", p.Err, p.Denied)
		}
		parts = append(parts, s)
	}
	lat := "probe -"
	if st, err := latency.Summarize(a.probe.Between(time.Unix(sec, 0), time.Unix(sec+1, 0))); err == nil {
		lat = fmt.Sprintf("probe p50 %s p99 %s", fmtMS(st.P50), fmtMS(st.P99))
		if st.Errors > 0 {
			lat += fmt.Sprintf(" (%d errors)", st.Errors)
		}
	}
	line := fmt.Sprintf("t=%4ds  %s  |  %s", int(now.Sub(a.res.Start).Seconds()), strings.Join(parts, "  "), lat)
	if a.cfg.Guard != nil {
		evs := a.cfg.Guard.Events()
		for _, ev := range evs[min(a.seenEvent, len(evs)):] {
			line += fmt.Sprintf("  [%s %s%s]", strings.ToUpper(ev.Kind), ev.Workload, onNode(ev.Node))
			if ev.Detail != "" && ev.Kind != "enforced" && ev.Kind != "released" {
				line += fmt.Sprintf(" (%s)", ev.Detail)
			}
		}
		a.seenEvent = len(evs)
	}
	fmt.Fprintf(a.cfg.Live, "%s  %s\n", now.Format("15:04:05"), line)
}

func onNode(n string) string {
	if n == "" {
		return ""
	}
	return " on " + n
}

func fmtMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	if ms >= 100 {
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.1fms", ms)
}
