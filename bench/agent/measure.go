package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
)

// window is one measured interval of one condition.
type window struct {
	cond       string // "warm-up", "idle" or "load"
	start, end procSample
	m0, m1     scrape // the agent's /metrics at the window's start and end
	rss        []int64
	served     int64 // GETs the stub answered
	conns      int64 // connections the stub accepted
	fromSec    int64 // whole unix seconds inside the window, for the pods' own counts
	toSec      int64
}

func (w *window) seconds() float64 { return w.end.at.Sub(w.start.at).Seconds() }

// cpuPercent is the agent's CPU over the window, % of one core.
func (w *window) cpuPercent() float64 {
	return 100 * (w.end.cpu() - w.start.cpu()).Seconds() / w.seconds()
}

func (w *window) rate(name string, match ...string) float64 {
	return (w.m1.sum(name, match...) - w.m0.sum(name, match...)) / w.m1.at.Sub(w.m0.at).Seconds()
}

// result is everything one run measured.
type result struct {
	mode            string
	warmup          *window
	windows         []*window
	hwm             int64
	memory          map[string]int64 // RssAnon, RssFile, RssShmem, VmData at the end
	mappings        map[string]int64 // resident bytes by mapping at the end (smaps)
	image           *residentImage   // the binary's resident pages by section and module
	workingSet      *workingSet
	agg0, agg1      scrape
	decisions       lines // the aggregator's audit file
	agentWarnings   lines // WARN and ERROR lines of the agent's log
	podErrors       map[string]string
	loadStart       string
	loadEnd         string
	began           time.Time
	source          string // what the binaries were built from
	setup, measured time.Duration
}

// measure runs the warm-up and the interleaved idle/load windows and samples the agent.
func measure(ctx context.Context, o options, ag *agent, agg *aggregator, stub *stubAPIServer, fl *fleet.Fleet, sink *profileSink, logger *slog.Logger) (*result, error) {
	res := &result{mode: ag.mode, began: time.Now(), loadStart: loadavg(), podErrors: map[string]string{}}
	pid := ag.proc.Pid()
	var err error
	if res.agg0, err = scrapeMetrics(ctx, agg.metricsURL); err != nil {
		return nil, err
	}
	setLoad := func(on bool) {
		sig := pauseSignal
		if on {
			sig = resumeSignal
		}
		for _, p := range fl.Pods() {
			_ = syscall.Kill(p.Pid, sig)
		}
	}
	record := func(cond string, d time.Duration) (*window, error) {
		w := &window{cond: cond}
		setLoad(cond != "idle")
		sink.setCondition("settle")
		// The agent reads the kernel counters once per --interval: let the last tick of the previous condition pass.
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(o.settle):
		}
		sink.setCondition(cond)
		var err error
		if w.start, err = sampleProc(pid); err != nil {
			return nil, err
		}
		served0, conns0 := stub.served.Load(), stub.conns.Load()
		if w.m0, err = scrapeMetrics(ctx, ag.metricsURL+"/metrics"); err != nil {
			return nil, err
		}
		deadline := w.start.at.Add(d)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-t.C:
			}
			if ag.proc.Exited() {
				return nil, fmt.Errorf("the agent exited during the %s window (log %s)", cond, ag.logFile)
			}
			s, err := sampleProc(pid)
			if err != nil {
				return nil, err
			}
			w.rss = append(w.rss, s.rss)
		}
		if w.end, err = sampleProc(pid); err != nil {
			return nil, err
		}
		w.served, w.conns = stub.served.Load()-served0, stub.conns.Load()-conns0
		if w.m1, err = scrapeMetrics(ctx, ag.metricsURL+"/metrics"); err != nil {
			return nil, err
		}
		w.fromSec, w.toSec = int64(math.Ceil(float64(w.start.at.UnixNano())/1e9)), w.end.at.Unix()
		logger.Info("window", "condition", cond, "cpu_pct", fmt.Sprintf("%.3f", w.cpuPercent()),
			"rss_mib", fmt.Sprintf("%.1f", mib(median(w.rss))), "served_per_s", fmt.Sprintf("%.0f", float64(w.served)/w.seconds()),
			"counted_per_s", fmt.Sprintf("%.0f", w.rate("fanout_workload_api_requests_total")))
		return w, nil
	}
	logger.Info("warm-up under load", "for", o.warmup)
	if res.warmup, err = record("warm-up", o.warmup); err != nil {
		return nil, err
	}
	for range o.rounds {
		for _, cond := range []string{"idle", "load"} {
			w, err := record(cond, o.window)
			if err != nil {
				return nil, err
			}
			res.windows = append(res.windows, w)
		}
	}
	setLoad(false)
	res.measured = time.Since(res.began)
	end, err := sampleProc(pid)
	if err != nil {
		return nil, err
	}
	res.hwm = end.hwm
	res.memory = readMemory(pid)
	if res.mappings, err = smapsRSS(pid); err != nil {
		return nil, err
	}
	if res.image, err = residentBinary(pid); err != nil {
		logger.Warn("attribute the binary's resident pages", "err", err) // an analysis, not a figure: go on
	}
	if o.workingSet > 0 {
		if res.workingSet, err = measureWorkingSet(o.workingSet, pid, record); err != nil {
			return nil, err
		}
	}
	setLoad(false)
	res.loadEnd = loadavg()
	if res.agg1, err = scrapeMetrics(ctx, agg.metricsURL); err != nil {
		return nil, err
	}
	res.decisions = grepLines(agg.auditFile, "")
	res.agentWarnings = grepLines(ag.logFile, `"level":"WARN"`, `"level":"ERROR"`)
	for _, w := range fl.Recorder.Workloads() {
		if e := fl.Recorder.LastErr(w); e != "" {
			res.podErrors[w] = e
		}
	}
	return res, nil
}

// workingSet is what the agent's binary holds resident after its pages were paged out and it ran on under load.
type workingSet struct {
	advised     int64
	right       *residentImage // just after the page-out
	after       *residentImage // after the window
	window      *window
	memoryAfter map[string]int64
}

func measureWorkingSet(d time.Duration, pid int, record func(string, time.Duration) (*window, error)) (*workingSet, error) {
	ws := &workingSet{}
	var err error
	if ws.advised, err = pageOutImage(pid); err != nil {
		return nil, err
	}
	if ws.right, err = residentBinary(pid); err != nil {
		return nil, err
	}
	if ws.window, err = record("working-set", d); err != nil {
		return nil, err
	}
	if ws.after, err = residentBinary(pid); err != nil {
		return nil, err
	}
	ws.memoryAfter = readMemory(pid)
	return ws, nil
}

func readMemory(pid int) map[string]int64 {
	out := map[string]int64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "RssAnon", "RssFile", "RssShmem", "VmData", "VmRSS", "VmHWM":
			if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
				out[k] = kb * 1024
			}
		}
	}
	return out
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// lines are the first of a file's matching lines and how many matched.
type lines struct {
	first string
	n     int
}

// grepLines finds the lines of path containing any of subs ("" matches every line).
func grepLines(path string, subs ...string) lines {
	var l lines
	f, err := os.Open(path)
	if err != nil {
		return l
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		for _, s := range subs {
			if strings.Contains(sc.Text(), s) {
				if l.n == 0 {
					l.first = sc.Text()
				}
				l.n++
				break
			}
		}
	}
	return l
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
