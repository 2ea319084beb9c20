package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/fanoutdev/fanout/aggregator/audit"
	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/replay"
	"github.com/fanoutdev/fanout/aggregator/scenario"
)

// runReplay implements `fanoutctl replay FILE [--json] [--audit FILE] [--dry-run]`.
// Exit codes: 0 success, 2 malformed file or usage, 1 other failures.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per decision and a final summary line")
	auditPath := fs.String("audit", "", "write every decision with its evidence to this JSON-lines file")
	fromScenario := fs.Bool("capacity-from-scenario", false, "tell the detector the scenario's API server capacity, as the capacity flags would (default: it learns the headroom from what the simulated API server shows)")
	cfg := engine.DefaultConfig()
	cfg.Fleet.RegisterFlags(fs)
	cfg.Detect.RegisterFlags(fs)
	cfg.Switch.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fanoutctl replay FILE [--json] [--audit FILE] [tuning flags]")
		fs.PrintDefaults()
	}
	// Allow the file before or after the flags.
	var file string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		if file != "" {
			fmt.Fprintf(stderr, "fanoutctl replay: more than one file given (%q, %q)\n", file, fs.Arg(0))
			return 2
		}
		file = fs.Arg(0)
		rest = fs.Args()[1:]
	}
	if file == "" {
		fs.Usage()
		return 2
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl replay: %v\n", err)
		return 1
	}
	s, err := scenario.Decode(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl replay: %s: %v\n", file, err)
		var se *scenario.Error
		if errors.As(err, &se) {
			return 2
		}
		return 1
	}
	opt := replay.Options{Config: cfg, CapacitySource: replay.CapacityLearned}
	if *fromScenario {
		opt.CapacitySource = replay.CapacityFlag
	}
	if *auditPath != "" {
		af, err := os.Create(*auditPath)
		if err != nil {
			fmt.Fprintf(stderr, "fanoutctl replay: create audit log: %v\n", err)
			return 1
		}
		defer af.Close()
		opt.Sink = audit.New(af, "replay", nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	start := time.Now()
	sum, err := replay.Run(ctx, s, opt, func(l replay.Line) {
		if *asJSON {
			_ = enc.Encode(l)
			return
		}
		fmt.Fprintf(stdout, "t=%-6d %-7s %-50s %s\n", l.T, l.Action, l.Workload, l.Reason)
	})
	if err != nil {
		fmt.Fprintf(stderr, "fanoutctl replay: %v\n", err)
		return 1
	}
	if *asJSON {
		_ = enc.Encode(map[string]any{"summary": sum})
		return 0
	}
	fmt.Fprintf(stdout, "summary: %d decisions (%d alerts, %d trips, %d releases); tripped %v\n", sum.Decisions, sum.Alerts, sum.Trips, sum.Releases, sum.Tripped)
	if sum.ProjectedCollapseT != nil {
		fmt.Fprintf(stdout, "unmitigated API server would saturate at t=%ds (peak %.2fx capacity)\n", *sum.ProjectedCollapseT, sum.PeakUtilizationUnmitigated)
	}
	if sum.LeadTimeS != nil {
		fmt.Fprintf(stdout, "first trip at t=%ds: lead time %ds\n", *sum.FirstTripT, *sum.LeadTimeS)
	}
	fmt.Fprintf(stdout, "peak utilization with fanout: %.2f; simulated %d nodes x %ds (%d samples) in %s\n",
		sum.PeakUtilization, sum.Nodes, sum.DurationS, sum.Samples, time.Since(start).Round(time.Millisecond))
	return 0
}
