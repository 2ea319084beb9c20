package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/aggregator/ingest"
	"github.com/fanoutdev/fanout/bench/internal/aggproc"
)

// result is what one run measured.
type result struct {
	cfg                    config
	attackStart, attackEnd time.Time
	loadBefore             string // /proc/loadavg's 1-minute figure when the run started

	// Aggregator process.
	peakRSS, rssEnd, hwm int64
	cores                float64 // mean over the attack

	// /metrics scrapes over the attack and the cool-down.
	scrapes, scrapeFails int
	scrapeP99, scrapeMax time.Duration
	firstScrapeErr       string
	maxPairs             float64
	scrapePhases         []string
	slowest              []scrapeResult

	// The agent.
	agentSent     int
	agentRejected map[string]int
	agentErr      error
	agentLagP99   time.Duration
	checks        int
	checksAttack  int
	checksBad     int
	firstBad      string
	topRate       float64
	topName       string
	statusMax     time.Duration

	// Counters over the attack (from just before it to the end of the cool-down).
	rejected   map[string]float64
	folded     float64
	accepted   float64
	attackSent map[string]int
	attackMB   float64
	reconnects int
	attackErrs []string
	watchErrs  []string
}

// rejection is the aggregator's "report rejected" debug record.
type rejection struct {
	Msg    string `json:"msg"`
	Node   string `json:"node"`
	Reason string `json:"reason"`
}

func analyze(c config, w *watch, a *agent, stats *attackStats, logLines []string, before, after aggproc.Metrics, attackStart, attackEnd time.Time) *result {
	r := &result{cfg: c, agentRejected: map[string]int{}, rejected: map[string]float64{}, attackStart: attackStart, attackEnd: attackEnd}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.rss {
		r.peakRSS = max(r.peakRSS, s.rss)
	}
	// Every scrape counts, the agent-only warm-up too.
	var took []time.Duration
	byPhase := map[string][]time.Duration{}
	for _, s := range w.scrapes {
		r.scrapes++
		took = append(took, s.took)
		ph := r.phase(s.at)
		byPhase[ph] = append(byPhase[ph], s.took)
		r.slowest = append(r.slowest, s)
		if s.err != nil {
			r.scrapeFails++
			if r.firstScrapeErr == "" {
				r.firstScrapeErr = s.err.Error()
			}
			continue
		}
		r.maxPairs = max(r.maxPairs, s.pairs)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	r.scrapeP99, r.scrapeMax = aggproc.Pct(took, 0.99), aggproc.Pct(took, 1)
	for _, ph := range phases {
		d := byPhase[ph]
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		r.scrapePhases = append(r.scrapePhases, fmt.Sprintf("%s %d scrapes: p50 %s, p99 %s, max %s", ph, len(d),
			aggproc.Pct(d, 0.5), aggproc.Pct(d, 0.99), aggproc.Pct(d, 1)))
	}
	sort.Slice(r.slowest, func(i, j int) bool { return r.slowest[i].took > r.slowest[j].took })
	r.slowest = r.slowest[:min(3, len(r.slowest))]
	for _, chk := range w.checks {
		r.checks++
		if !chk.at.Before(r.attackStart) && chk.at.Before(r.attackEnd) {
			r.checksAttack++
		}
		if !chk.ok {
			r.checksBad++
			if r.firstBad == "" {
				r.firstBad = chk.detail
			}
		}
		r.statusMax = max(r.statusMax, chk.took.Round(time.Millisecond))
		if chk.topRate > r.topRate {
			r.topRate, r.topName = chk.topRate, chk.topName
		}
	}
	r.watchErrs = w.errs

	a.mu.Lock()
	r.agentSent, r.agentErr = len(a.sent), a.err
	lags := append([]time.Duration(nil), a.lags...)
	a.mu.Unlock()
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	r.agentLagP99 = aggproc.Pct(lags, 0.99)
	for _, l := range logLines {
		var rec rejection
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "report rejected" && rec.Node == goodNode {
			r.agentRejected[rec.Reason]++
		}
	}

	const rejected = "fanout_aggregator_reports_rejected_total"
	b, e := before.ByLabel(rejected), after.ByLabel(rejected)
	for reason, v := range e {
		r.rejected[reason] = v - b[reason]
	}
	r.folded = after["fanout_aggregator_names_folded_total"] - before["fanout_aggregator_names_folded_total"]
	r.accepted = after["fanout_aggregator_reports_total"] - before["fanout_aggregator_reports_total"]

	stats.mu.Lock()
	r.attackSent, r.attackMB, r.reconnects, r.attackErrs = stats.sent, float64(stats.bytes)/(1<<20), stats.reconnects, stats.errs
	stats.mu.Unlock()
	return r
}

var phases = []string{"warm-up", "attack", "cool-down"}

// phase names the part of the run t falls in.
func (r *result) phase(t time.Time) string {
	switch {
	case t.Before(r.attackStart):
		return phases[0]
	case t.Before(r.attackEnd):
		return phases[1]
	}
	return phases[2]
}

// pairsBound is the most workload-node pairs the attack may leave held: per attacker, the new names its limiter
// admits over the attack's minutes (and at most ingest.MaxStreamNames), plus its unattributed bucket; the agent's
// workloads; the fleet's overflow bucket.
func (r *result) pairsBound() float64 {
	minutes := math.Ceil(r.cfg.attack.Minutes())
	perNode := min(float64(ingest.MaxStreamNames), minutes*ingest.MaxNewNamesPerMinute)
	return float64(r.cfg.attackers)*(perNode+1) + goodWorkloads + 1
}

// rateBound is the highest request rate the attack may produce: every attacker's one-second claim, all requests in
// its unattributed bucket, scaled by the minimum rate interval (a 1 ns interval scales by 2, not by 1e9).
func (r *result) rateBound() float64 {
	return float64(r.cfg.attackers) * float64(r.cfg.names) * float64(requestsPer) * float64(time.Second) / float64(ingest.MinRateInterval)
}

// failures lists the bounds the run broke.
func (r *result) failures() []string {
	var f []string
	if lim := r.cfg.maxRSSMiB << 20; r.peakRSS > lim {
		f = append(f, fmt.Sprintf("peak RSS %s > %d MiB", mib(r.peakRSS), r.cfg.maxRSSMiB))
	}
	if r.scrapeFails > 0 {
		f = append(f, fmt.Sprintf("%d /metrics scrapes failed (%s)", r.scrapeFails, r.firstScrapeErr))
	}
	if r.scrapeMax > r.cfg.maxScrape {
		f = append(f, fmt.Sprintf("slowest /metrics scrape %s > %s", r.scrapeMax, r.cfg.maxScrape))
	}
	if n := sum(r.agentRejected); n > 0 {
		f = append(f, fmt.Sprintf("%d of the agent's reports rejected %v", n, r.agentRejected))
	}
	if r.agentErr != nil {
		f = append(f, "agent: "+r.agentErr.Error())
	}
	if r.checksBad > 0 {
		f = append(f, fmt.Sprintf("%d status checks of the agent's workloads wrong (%s)", r.checksBad, r.firstBad))
	}
	if r.checksAttack == 0 {
		f = append(f, "no status check of the agent's workloads during the attack")
	}
	if r.maxPairs > r.pairsBound() {
		f = append(f, fmt.Sprintf("%.0f workload-node pairs held > bound %.0f", r.maxPairs, r.pairsBound()))
	}
	if r.topRate > r.rateBound() {
		f = append(f, fmt.Sprintf("%s at %.3g req/s > bound %.3g", r.topName, r.topRate, r.rateBound()))
	}
	if r.folded == 0 || r.rejected["invalid"] == 0 || r.rejected["duplicate_second"] == 0 {
		f = append(f, "the attack did not reach the limits (nothing folded, invalid or duplicate): it proves nothing")
	}
	return f
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func pass(ok bool) string {
	if ok {
		return "ok"
	}
	return "**FAIL**"
}

// loadAvg returns the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// machine describes where the benchmark ran.
func machine() string {
	host, _ := os.Hostname()
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	cpu := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = " (" + strings.TrimSpace(v) + ")"
				break
			}
		}
	}
	return fmt.Sprintf("%s, %s, %d CPUs%s shared by the aggregator and the load generator, %s %s/%s", host, kernel, runtime.NumCPU(), cpu,
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func (r *result) markdown() string {
	var b strings.Builder
	c := r.cfg
	secs := r.attackEnd.Sub(r.attackStart).Seconds()
	fmt.Fprintf(&b, "## Cardinality attack\n\n")
	fmt.Fprintf(&b, "`make bench-attack` (bench/attack), %s; %s; load average %s when the run started (other work on the machine).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine(), r.loadBefore)
	fmt.Fprintf(&b, "Issue 10, finding 2: any agent credential could grow the aggregator's memory without bound. The real\n")
	fmt.Fprintf(&b, "`fanout-aggregator` binary runs on loopback with default limits (`--memory.limit-mib=400`, `--fleet.max-workloads=20000`)\n")
	fmt.Fprintf(&b, "and node-bound agent tokens. One well-behaved agent reports %d workloads (10-50 req/s, two pods each) every second,\n", goodWorkloads)
	fmt.Fprintf(&b, "%s after the second ends (the window closes 1 s after it ends). After %s, %d attacker nodes, each with its own\n", c.agentOffset, c.warmup, c.attackers)
	fmt.Fprintf(&b, "credential, send for %s, every second from 200, 350 and 500 ms after it ends (so the agent's report meets their\n", c.attack)
	fmt.Fprintf(&b, "bursts), on one gRPC connection and stream each, replaced every %s to reset any per-stream state:\n\n", c.reconnect)
	fmt.Fprintf(&b, "- `%s`: %d fresh workload names in `workloads` and %d fresh pods naming them (over the per-report limit);\n", kindWide, c.names, c.names)
	fmt.Fprintf(&b, "- `%s`: %d fresh pods in `pods` only, each naming a fresh workload (the way around the workload limit);\n", kindBypass, c.names)
	fmt.Fprintf(&b, "- `%s`: the most a valid report may carry, %d fresh workloads and %d fresh pods, alternating with\n", kindValid, maxValidWls, c.names)
	fmt.Fprintf(&b, "  `%s`: %d fresh pods without a workload, %d request each, over a claimed 1 ns interval;\n", kindTinyIvl, c.names, requestsPer)
	fmt.Fprintf(&b, "- `%s`: the same second again, with fresh names again.\n\n", kindRepeat)
	kinds := aggproc.Keys(r.attackSent)
	var sent []string
	total := 0
	for _, k := range kinds {
		sent = append(sent, fmt.Sprintf("%s %d", k, r.attackSent[k]))
		total += r.attackSent[k]
	}
	fmt.Fprintf(&b, "Offered: %d hostile reports (%s), %.0f MiB of protobuf (%.1f MiB/s), %d connections. ", total, strings.Join(sent, ", "),
		r.attackMB, r.attackMB/secs, r.reconnects)
	fmt.Fprintf(&b, "RSS is sampled from /proc every 250 ms over the whole run; /metrics is scraped every 500 ms with a %s client timeout\n", c.scrapeTimeout)
	fmt.Fprintf(&b, "(%d scrapes); the admin `Status` is read every 2 s, and whenever its window is a second the agent reported, each of the\n", r.scrapes)
	fmt.Fprintf(&b, "agent's workloads must be listed at its exact rate. The agent's rejections are read from the aggregator's\n")
	fmt.Fprintf(&b, "`report rejected` debug records (which name the node).\n\n")
	fmt.Fprintf(&b, "| metric | result | bound | |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| aggregator RSS, peak of 250 ms samples (VmHWM) | %s (%s) | <= %d MiB | %s |\n", mib(r.peakRSS), mib(r.hwm), c.maxRSSMiB,
		pass(r.peakRSS <= c.maxRSSMiB<<20))
	fmt.Fprintf(&b, "| aggregator RSS %s after the attack | %s | | |\n", c.cooldown, mib(r.rssEnd))
	fmt.Fprintf(&b, "| `/metrics` scrape, p99 / max (failed) | %s / %s (%d of %d) | <= %s, none failed | %s |\n", r.scrapeP99, r.scrapeMax,
		r.scrapeFails, r.scrapes, c.maxScrape, pass(r.scrapeFails == 0 && r.scrapeMax <= c.maxScrape))
	fmt.Fprintf(&b, "| the agent's reports rejected | %d of %d%s | 0 | %s |\n", sum(r.agentRejected), r.agentSent, reasons(r.agentRejected),
		pass(sum(r.agentRejected) == 0 && r.agentErr == nil))
	fmt.Fprintf(&b, "| `Status` windows with the agent's %d workloads at their exact rate | %d of %d (%d during the attack) | all | %s |\n",
		goodWorkloads, r.checks-r.checksBad, r.checks, r.checksAttack, pass(r.checksBad == 0 && r.checksAttack > 0))
	fmt.Fprintf(&b, "| admin `Status` call, max | %s | | |\n", r.statusMax)
	fmt.Fprintf(&b, "| workload-node pairs held, max (`fanout_aggregator_workload_node_pairs`) | %.0f | <= %.0f | %s |\n", r.maxPairs, r.pairsBound(),
		pass(r.maxPairs <= r.pairsBound()))
	fmt.Fprintf(&b, "| highest workload rate in `Status` | %.0f req/s (%s) | <= %.0f | %s |\n", r.topRate, r.topName, r.rateBound(),
		pass(r.topRate <= r.rateBound()))
	fmt.Fprintf(&b, "| names folded into `%s` (`fanout_aggregator_names_folded_total`) | %.0f | | |\n", ingest.Unattributed, r.folded)
	var rej []string
	for _, k := range aggproc.Keys(r.rejected) {
		if v := r.rejected[k]; v != 0 {
			rej = append(rej, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	fmt.Fprintf(&b, "| reports rejected by reason (`fanout_aggregator_reports_rejected_total`, increase) | %s | | |\n", strings.Join(rej, ", "))
	fmt.Fprintf(&b, "| reports accepted (all nodes) | %.0f | | |\n", r.accepted)
	fmt.Fprintf(&b, "| aggregator CPU, mean over the attack | %.2f cores | | |\n", r.cores)
	fmt.Fprintf(&b, "| the agent's send lag behind schedule, p99 | %s | | |\n\n", r.agentLagP99)
	fmt.Fprintf(&b, "`/metrics` by phase: %s. Slowest scrapes:", strings.Join(r.scrapePhases, "; "))
	for i, sc := range r.slowest {
		sep := ","
		if i == len(r.slowest)-1 {
			sep = "."
		}
		fmt.Fprintf(&b, " %s at %s, %d ms into the second%s", sc.took.Round(time.Millisecond), r.relative(sc.at), sc.at.Nanosecond()/1e6, sep)
	}
	fmt.Fprintf(&b, " Both processes share the machine's %d CPUs; the load generator builds and marshals %.1f MiB/s of hostile protobuf.\n\n", runtime.NumCPU(), r.attackMB/secs)
	fmt.Fprintf(&b, "Pairs bound: per attacker node the new names its limiter admits in the attack's minute (%d a minute, shared by all\n", ingest.MaxNewNamesPerMinute)
	fmt.Fprintf(&b, "its streams, so reconnecting gains nothing) and its unattributed bucket, plus the agent's workloads and the overflow\n")
	fmt.Fprintf(&b, "bucket. (The limiter runs before the engine's checks, so a node's rejected reports, here its repeats, spend its budget\n")
	fmt.Fprintf(&b, "too: the pairs held stay below the bound.) Rate bound: every attacker's %d requests claimed in one second, scaled over at least %s.\n", c.names*int(requestsPer), ingest.MinRateInterval)
	if len(r.attackErrs) > 0 || len(r.watchErrs) > 0 {
		fmt.Fprintf(&b, "\nErrors: attack %q; watchers %q.\n", r.attackErrs, r.watchErrs)
	}
	if f := r.failures(); len(f) > 0 {
		fmt.Fprintf(&b, "\n**Bounds broken:** %s.\n", strings.Join(f, "; "))
	}
	return b.String()
}

// relative places t relative to the start or the end of the attack.
func (r *result) relative(t time.Time) string {
	if t.Before(r.attackEnd) {
		return fmt.Sprintf("attack start %+.1fs", t.Sub(r.attackStart).Seconds())
	}
	return fmt.Sprintf("attack end %+.1fs", t.Sub(r.attackEnd).Seconds())
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	var out []string
	for _, k := range aggproc.Keys(m) {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return " (" + strings.Join(out, ", ") + ")"
}
