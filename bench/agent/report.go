package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/internal/benchmd"
)

const sectionTitle = "Agent footprint"

// Issue 11's targets for the agent's own footprint at 5,000 API calls/s on the node.
const (
	targetRSS     = 40 << 20
	targetCPUPcts = 1.0
)

func writeSection(file, text string) error { return benchmd.WriteSection(file, sectionTitle, text) }

// condition aggregates the windows of one condition.
type condition struct {
	name    string
	windows []*window
}

func (r *result) condition(name string) condition {
	c := condition{name: name}
	for _, w := range r.windows {
		if w.cond == name {
			c.windows = append(c.windows, w)
		}
	}
	return c
}

func (c condition) seconds() float64 {
	t := 0.0
	for _, w := range c.windows {
		t += w.seconds()
	}
	return t
}

// cpu is the agent's CPU over all the condition's windows (% of one core), and its user and system parts.
func (c condition) cpu() (all, user, sys float64) {
	var u, s time.Duration
	for _, w := range c.windows {
		u += w.end.user - w.start.user
		s += w.end.sys - w.start.sys
	}
	d := c.seconds()
	return 100 * (u + s).Seconds() / d, 100 * u.Seconds() / d, 100 * s.Seconds() / d
}

func (c condition) perWindowCPU() string {
	var parts []string
	for _, w := range c.windows {
		parts = append(parts, fmt.Sprintf("%.2f", w.cpuPercent()))
	}
	return strings.Join(parts, ", ")
}

func (c condition) rss() (med, mx int64) {
	var all []int64
	for _, w := range c.windows {
		all = append(all, w.rss...)
	}
	for _, v := range all {
		mx = max(mx, v)
	}
	return median(all), mx
}

// atEnds is the median over the condition's windows of a series read at each window's end.
func (c condition) atEnds(name string) float64 {
	var v []float64
	for _, w := range c.windows {
		v = append(v, w.m1.sum(name))
	}
	return medianF(v)
}

// perSecond is a counter's rate over the condition's windows (the agent's /metrics at each window's ends).
func (c condition) perSecond(name string, match ...string) float64 {
	var d, t float64
	for _, w := range c.windows {
		d += w.m1.sum(name, match...) - w.m0.sum(name, match...)
		t += w.m1.at.Sub(w.m0.at).Seconds()
	}
	return d / t
}

func (c condition) served() float64 {
	var n int64
	for _, w := range c.windows {
		n += w.served
	}
	return float64(n) / c.seconds()
}

func (c condition) conns() float64 {
	var n int64
	for _, w := range c.windows {
		n += w.conns
	}
	return float64(n) / c.seconds()
}

func verdict(ok bool) string {
	if ok {
		return "**pass**"
	}
	return "**FAIL**"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// markdown is the "Agent footprint" section.
func (r *result) markdown(o options, fl loadPlan) string {
	idle, load := r.condition("idle"), r.condition("load")
	idleCPU, idleUser, idleSys := idle.cpu()
	loadCPU, loadUser, loadSys := load.cpu()
	idleMed, idleMax := idle.rss()
	loadMed, loadMax := load.rss()
	steadyMax := max(idleMax, loadMax)
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## %s\n\n", sectionTitle)
	p("`make bench-agent` (bench/agent), %s, kernel %s, %d CPUs, Go %s, load average %s at the start and %s at the end "+
		"(the machine is shared); binaries built from %s; whole run %s (set-up %s).\n\n",
		r.began.UTC().Format("2006-01-02 15:04 UTC"), kernel(), runtime.NumCPU(), runtime.Version(), r.loadStart, r.loadEnd,
		r.source, (r.setup + r.measured).Round(time.Second), r.setup.Round(time.Second))
	p("One node as a kubelet lays it out (e2e/fleet: `<cgroup2>/fanout-bench-<pid>/node-1/kubepods/besteffort/pod<UID>/<container>`), "+
		"a real etcd + kube-apiserver holding its Node and %d Pod objects of %d workloads (nodeName set, owner references, UIDs naming the cgroups), "+
		"the real `fanout-agent` (GOMEMLIMIT=%s as the Helm chart sets, `--cgroup.root` at the node's kubepods, pod informer on the real API server, "+
		"reporting every second to a real `fanout-aggregator` over gRPC; enforcement on, the aggregator in dry-run). "+
		"Each pod's process is this bench re-executed, born in its container cgroup, calling a loopback stub API server listed in `--api.endpoints`: "+
		"HTTPS, HTTP/2, one keep-alive connection per pod plus one call on a new connection every %s per pod (%g new connections/s on the node), "+
		"each GET answered with 1 KiB after %s. %g calls/s on the node in load windows (per pod: DaemonSets %s).\n\n",
		fl.pods, len(nodeWorkloads), o.memLimit, fl.newConnEvery, o.newConns, o.delay, o.rate, fl.describe)
	p("The agent gives back the pages of its binary that only its start-up touched once, a minute after it starts "+
		"(`--memory.page-out-after`, internal/memtrim); the bench sets it to %s so that every window measures the agent after it.\n\n",
		pageOutAfter(o.warmup))
	p("After %s of warm-up under load, %d idle and %d load windows of %s, interleaved (idle, load, idle, load). "+
		"CPU is the agent process's utime+stime delta (/proc/<pid>/stat) over all windows of a condition, %% of one core "+
		"(each window's figure in parentheses); RSS is VmRSS sampled every 500 ms; the agent's /metrics is read at each window's "+
		"edges (one scrape per window, like a Prometheus at %s) for its counters and Go heap.\n\n",
		o.warmup, len(idle.windows), len(load.windows), o.window, o.window)

	p("| agent process | idle | load (%g calls/s) | target | result |\n|---|---|---|---|---|\n", o.rate)
	p("| CPU, %% of one core | %.2f (%s) | %.2f (%s) | ≤ %g | %s |\n", idleCPU, idle.perWindowCPU(), loadCPU, load.perWindowCPU(),
		targetCPUPcts, verdict(loadCPU <= targetCPUPcts))
	p("| of which user / system | %.2f / %.2f | %.2f / %.2f | | |\n", idleUser, idleSys, loadUser, loadSys)
	p("| RSS, median / max of 500 ms samples (MiB) | %.1f / %.1f | %.1f / %.1f | ≤ 40 | %s |\n", mib(idleMed), mib(idleMax),
		mib(loadMed), mib(loadMax), verdict(steadyMax <= targetRSS))
	p("| VmHWM at the end: peak RSS since start, incl. start-up (MiB) | %.1f | | ≤ 40 | %s |\n", mib(r.hwm), verdict(r.hwm <= targetRSS))
	p("| Go heap in use at window ends, median (MiB) | %.1f | %.1f | | |\n",
		idle.atEnds("go_memstats_heap_inuse_bytes")/(1<<20), load.atEnds("go_memstats_heap_inuse_bytes")/(1<<20))
	p("| Go runtime's memory mapped from the OS, go_memstats_sys_bytes, not all resident (MiB) | %.1f | %.1f | | |\n",
		idle.atEnds("go_memstats_sys_bytes")/(1<<20), load.atEnds("go_memstats_sys_bytes")/(1<<20))
	p("| goroutines | %.0f | %.0f | | |\n", idle.atEnds("go_goroutines"), load.atEnds("go_goroutines"))
	p("| calls/s answered by the stub API server (offered) | %.0f | %.0f | | |\n", idle.served(), load.served())
	p("| counted by the agent: `fanout_workload_api_requests_total`/s | %.0f | %.0f | | |\n",
		idle.perSecond("fanout_workload_api_requests_total"), load.perSecond("fanout_workload_api_requests_total"))
	ratio := load.perSecond("fanout_workload_api_requests_total") / load.served()
	p("| counted / offered | | %.3f | | |\n", ratio)
	p("| new connections/s: stub accepted / agent counted (`fanout_workload_api_connects_total`) | %.2f / %.2f | %.2f / %.2f | | |\n\n",
		idle.conns(), idle.perSecond("fanout_workload_api_connects_total"), load.conns(), load.perSecond("fanout_workload_api_connects_total"))

	p("%s\n\n", r.verdict(loadCPU, idleCPU, loadMed, steadyMax))
	p("Attribution in the load windows (the pods' own counts of completed calls vs the agent's per-workload counter):\n\n")
	p("| workload | pods | calls/s (pods) | counted requests/s (agent) | ratio |\n|---|---|---|---|---|\n")
	for _, w := range fl.rows(load) {
		p("| %s | %d | %.0f | %.0f | %.3f |\n", w.id, w.pods, w.offered, w.counted, w.counted/w.offered)
	}
	p("\n")
	hwmNote := ""
	if r.memory["VmHWM"] > 0 {
		hwmNote = fmt.Sprintf(" At the end: RssAnon %.1f MiB, RssFile %.1f MiB (the binary's mapped text and data), RssShmem %.1f MiB.",
			mib(r.memory["RssAnon"]), mib(r.memory["RssFile"]), mib(r.memory["RssShmem"]))
	}
	p("Probe mode: `%s` (fanout_agent_probe_mode). Reports received by the aggregator: %.2f/s (fanout_aggregator_reports_total). "+
		"Warm-up: CPU %.2f%%, RSS median %.1f MiB.%s\n",
		r.mode, (r.agg1.sum("fanout_aggregator_reports_total")-r.agg0.sum("fanout_aggregator_reports_total"))/r.agg1.at.Sub(r.agg0.at).Seconds(),
		r.warmup.cpuPercent(), mib(median(r.warmup.rss)), hwmNote)
	if n := len(load.windows); n > 0 {
		m := load.windows[n-1].m1
		g := func(name string) float64 { return m.sum(name) / (1 << 20) }
		p("\nGo runtime at the end of the last load window (MiB): heap in use %.1f, stacks %.1f, GC metadata %.1f, spans %.1f, "+
			"other runtime %.1f; heap idle %.1f, of which returned to the OS %.1f. Cgroups the agent could not attribute "+
			"(fanout_agent_unknown_cgroups): %.0f.\n",
			g("go_memstats_heap_inuse_bytes"), g("go_memstats_stack_inuse_bytes"), g("go_memstats_gc_sys_bytes"),
			g("go_memstats_mspan_inuse_bytes"), g("go_memstats_other_sys_bytes"), g("go_memstats_heap_idle_bytes"),
			g("go_memstats_heap_released_bytes"), m.sum("fanout_agent_unknown_cgroups"))
	}
	if len(r.mappings) > 0 {
		p("\nResident memory by mapping at the end (/proc/<pid>/smaps): %s.\n", top(r.mappings, 5))
	}
	if im := r.image; im != nil {
		p("\nThe binary's resident pages (present in the agent's page tables, /proc/<pid>/pagemap, %.1f MiB) by ELF section: %s. "+
			"Resident `.text` by module (function symbols on each resident page): %s.\n",
			mib(im.total), top(im.bySection, 6), top(im.byModule, 10))
	}
	if ws := r.workingSet; ws != nil && ws.after != nil {
		p("\nWorking set of the binary: its read-only mappings paged out (process_madvise MADV_PAGEOUT: %.1f MiB advised, %.1f MiB "+
			"still resident right after), then %s more under load (after %s settling) faulted back %.1f MiB of it: %s; `.text` by module: %s. "+
			"VmRSS then %.1f MiB (RssAnon %.1f, RssFile %.1f); agent CPU in that window %.2f%% (re-faults included).\n",
			mib(ws.advised), mib(ws.right.total), ws.window.end.at.Sub(ws.window.start.at).Round(time.Second), o.settle,
			mib(ws.after.total), top(ws.after.bySection, 4), top(ws.after.byModule, 6),
			mib(ws.memoryAfter["VmRSS"]), mib(ws.memoryAfter["RssAnon"]), mib(ws.memoryAfter["RssFile"]), ws.window.cpuPercent())
	}
	if r.decisions.n > 0 {
		p("\nAggregator decisions during the run (dry-run): %d, first: `%s`\n", r.decisions.n, trim(r.decisions.first, 200))
	}
	if r.agentWarnings.n > 0 {
		p("\nAgent warnings and errors in its log: %d, first: `%s`\n", r.agentWarnings.n, trim(r.agentWarnings.first, 200))
	}
	for _, w := range slices.Sorted(maps.Keys(r.podErrors)) {
		p("\nPods of %s reported errors, last: `%s`\n", w, trim(r.podErrors[w], 200))
	}
	return b.String()
}

// verdict says in words what the table says, and where the memory over the target is.
func (r *result) verdict(loadCPU, idleCPU float64, loadMed, steadyMax int64) string {
	var b strings.Builder
	if loadCPU <= targetCPUPcts {
		fmt.Fprintf(&b, "CPU target met: %.2f%% of a core under load, %.2f%% idle. ", loadCPU, idleCPU)
	} else {
		fmt.Fprintf(&b, "**CPU target missed**: %.2f%% of a core under load (%.2f%% idle). ", loadCPU, idleCPU)
	}
	b.WriteString("The per-call work is done in the kernel by the probe, on the calling pods' CPU time (bench/probe measures " +
		"it); the agent reads counters once a second whatever the rate. ")
	if steadyMax <= targetRSS && r.hwm <= targetRSS {
		fmt.Fprintf(&b, "RSS target met: %.1f MiB at most.", mib(steadyMax))
		return b.String()
	}
	fmt.Fprintf(&b, "**RSS target missed**: VmRSS %.1f MiB median under load (%.1f MiB max, peak %.1f MiB)", mib(loadMed),
		mib(steadyMax), mib(r.hwm))
	if r.memory["RssFile"] > 0 {
		fmt.Fprintf(&b, ", of which %.1f MiB file-backed (the fanout-agent binary's own pages) and %.1f MiB anonymous",
			mib(r.memory["RssFile"]), mib(r.memory["RssAnon"]))
	}
	b.WriteString(".")
	if ws := r.workingSet; ws != nil && ws.after != nil && r.image != nil {
		fmt.Fprintf(&b, " %.1f MiB of the binary's resident pages are start-up residue: paged out, they were not touched "+
			"again in %s under load, while the agent ran at VmRSS %.1f MiB (working set below).", mib(r.image.total-ws.after.total),
			ws.window.end.at.Sub(ws.window.start.at).Round(time.Second), mib(ws.memoryAfter["VmRSS"]))
	}
	return b.String()
}

func trim(s string, n int) string {
	s = strings.ReplaceAll(s, "`", "'")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
