package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/fanoutdev/fanout/aggregator/killswitch"
	"github.com/fanoutdev/fanout/api/ramp"
	"github.com/fanoutdev/fanout/internal/benchmd"
)

func main() {
	out := flag.String("out", "BENCHMARKS.md", "file whose \"Release ramp spread\" section is replaced (empty: print only)")
	flag.Parse()
	cfg := killswitch.DefaultConfig()
	s := ramp.Schedule{Duration: cfg.RampDuration, Steps: cfg.RampSteps, Jitter: cfg.RampJitter}
	var rows []row
	for _, f := range fleets() {
		rows = append(rows, spread(s, f))
	}
	section := markdown(s, rows)
	fmt.Print(section)
	if *out == "" {
		return
	}
	if err := benchmd.WriteSection(*out, "Release ramp spread", section); err != nil {
		slog.Error("write section", "err", err)
		os.Exit(1)
	}
}

type fleet struct {
	label string
	names []string
}

// fleets are node name sets as clusters name them: kubeadm-style sequences, cloud private-DNS names, and small fleets
// (where a hash can bunch nodes most).
func fleets() []fleet {
	seq := func(n int, format string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf(format, i+1)
		}
		return out
	}
	ec2 := make([]string, 0, 10000)
	for i := 0; len(ec2) < 10000; i++ {
		ec2 = append(ec2, fmt.Sprintf("ip-10-%d-%d-%d.ec2.internal", 16+i/65536%16, i/256%256, i%256))
	}
	gke := make([]string, 2000)
	for i := range gke {
		gke[i] = fmt.Sprintf("gke-prod-default-pool-%08x-%04x", uint32(i*2654435761), i)
	}
	return []fleet{
		{"4 nodes (node-1..4, the e2e)", seq(4, "node-%d")},
		{"16 nodes (node-1..16)", seq(16, "node-%d")},
		{"100 nodes (worker-001..)", seq(100, "worker-%03d")},
		{"2,000 nodes (GKE-style names)", gke},
		{"10,000 nodes (EC2 private DNS names)", ec2},
	}
}

type row struct {
	label         string
	nodes         int
	perStep       []int
	maxPerSecond  int // largest number of nodes re-admitted within any 1 s window
	first, last   time.Duration
	median        time.Duration
	oldMaxPerSec  int // before: every node within the jitter
	oldLast       time.Duration
	emptySteps    int
	maxStepShare  float64
	minStepShare  float64
	secondsWithRe int
}

func spread(s ramp.Schedule, f fleet) row {
	r := row{label: f.label, nodes: len(f.names), perStep: make([]int, s.Steps)}
	offs := make([]time.Duration, len(f.names))
	old := make([]time.Duration, len(f.names))
	for i, n := range f.names {
		offs[i] = s.Offset(n)
		r.perStep[s.Step(n)]++
		// Before: each agent placed its own pods over the ramp; a DaemonSet's one pod per node came back at once,
		// within the node's jitter.
		old[i] = ramp.Schedule{Duration: 0, Steps: 1, Jitter: s.Jitter}.Offset(n)
	}
	slices.Sort(offs)
	slices.Sort(old)
	r.first, r.last, r.median = offs[0], offs[len(offs)-1], offs[len(offs)/2]
	r.maxPerSecond, r.secondsWithRe = maxInWindow(offs, time.Second)
	r.oldMaxPerSec, _ = maxInWindow(old, time.Second)
	r.oldLast = old[len(old)-1]
	r.minStepShare = 1
	for _, c := range r.perStep {
		if c == 0 {
			r.emptySteps++
		}
		share := float64(c) / float64(r.nodes)
		r.maxStepShare = max(r.maxStepShare, share)
		r.minStepShare = min(r.minStepShare, share)
	}
	return r
}

// maxInWindow returns the most offsets within any window of length w (sorted input), and how many distinct seconds
// see a re-admission.
func maxInWindow(sorted []time.Duration, w time.Duration) (int, int) {
	best, j := 0, 0
	seconds := map[time.Duration]bool{}
	for i := range sorted {
		for sorted[i]-sorted[j] >= w {
			j++
		}
		best = max(best, i-j+1)
		seconds[sorted[i]/time.Second] = true
	}
	return best, len(seconds)
}

func markdown(s ramp.Schedule, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Release ramp spread\n\n")
	fmt.Fprintf(&b, "`make bench-ramp` (bench/ramp), %s, Go %s, %s/%s. Computed, not timed: the placement every agent runs "+
		"(api/ramp: a node's step from a hash of its name, plus its own jitter) with the aggregator's default flags "+
		"(`--killswitch.ramp-duration=%s --killswitch.ramp-steps=%d --killswitch.ramp-jitter=%s`), for a DaemonSet "+
		"with one pod per node. \"Before\" is the release as agents ran it before placement was fleet-wide (each agent "+
		"spread its own pods; one pod per node came back at once, within the jitter).\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.Version(), runtime.GOOS, runtime.GOARCH, s.Duration, s.Steps, s.Jitter)
	fmt.Fprintf(&b, "| fleet | nodes per step | step share min–max | most nodes re-admitted in 1 s | first – median – last | before: most in 1 s, last |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		steps := make([]string, len(r.perStep))
		for i, c := range r.perStep {
			steps[i] = fmt.Sprint(c)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f%%–%.0f%% | %d (%.1f%%) | %s – %s – %s | %d (%.0f%%), %s |\n", r.label,
			strings.Join(steps, " / "), 100*r.minStepShare, 100*r.maxStepShare, r.maxPerSecond,
			100*float64(r.maxPerSecond)/float64(r.nodes), r.first.Round(10*time.Millisecond), r.median.Round(10*time.Millisecond),
			r.last.Round(10*time.Millisecond), r.oldMaxPerSec, 100*float64(r.oldMaxPerSec)/float64(r.nodes),
			r.oldLast.Round(10*time.Millisecond))
	}
	big := rows[len(rows)-1]
	fmt.Fprintf(&b, "\nWith default flags a large fleet comes back in %d steps %s apart, the last node %s after the "+
		"release: at most %.1f%% of it in any one second (a step's quarter of the fleet spread over the %s jitter), "+
		"against %.0f%% per second, everything within %s, before. Small fleets land unevenly on steps (a hash of a few "+
		"names) but never all at once. A longer --killswitch.ramp-jitter (up to a step's length) flattens each step "+
		"further. A real release is measured in the e2e (End to end, above).\n\n",
		s.Steps, s.Duration/time.Duration(s.Steps), big.last.Round(time.Second),
		100*float64(big.maxPerSecond)/float64(big.nodes), s.Jitter,
		100*float64(big.oldMaxPerSec)/float64(big.nodes), s.Jitter)
	return b.String()
}
