package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"

	"github.com/fanoutdev/fanout/api"
)

// maxListed bounds the laggards and refusals printed per tripped workload; the rest are counted ("+K more").
const maxListed = 10

// printEnforcement prints the closed loop of every tripped workload (state "trip"), lowest coverage first: how many
// of the nodes running it enforce the block, the laggards by name, and the nodes that refuse it with their reason.
// It prints nothing when no workload is tripped.
func printEnforcement(w io.Writer, workloads []*api.WorkloadStatus) {
	var trips []*api.WorkloadStatus
	for _, x := range workloads {
		if x.GetState() == "trip" {
			trips = append(trips, x)
		}
	}
	if len(trips) == 0 {
		return
	}
	sort.SliceStable(trips, func(a, b int) bool {
		if ca, cb := trips[a].GetCoverage(), trips[b].GetCoverage(); ca != cb {
			return ca < cb
		}
		return trips[a].GetWorkload() < trips[b].GetWorkload()
	})
	fmt.Fprintln(w, "\nenforcement of tripped workloads:")
	for _, x := range trips {
		fmt.Fprintf(w, "  %s  %s\n", printable(x.GetWorkload()), coverageLine(x.GetNodesEnforcing(), x.GetNodesRunning()))
		// Every node running the workload and not enforcing it is a laggard; the aggregator names the first few.
		lagging := 0
		if x.GetNodesRunning() > x.GetNodesEnforcing() {
			lagging = int(x.GetNodesRunning() - x.GetNodesEnforcing())
		}
		if names := x.GetLaggards(); lagging > 0 || len(names) > 0 {
			fmt.Fprintf(w, "    laggards: %s\n", boundedList(names, max(lagging, len(names)), printable))
		}
		if rs := x.GetRefusals(); len(rs) > 0 {
			fmt.Fprintf(w, "    refused:  %s\n", boundedList(rs, len(rs), func(r *api.NodeRefusal) string {
				return printable(r.GetNode()) + " (" + printable(r.GetReason()) + ")"
			}))
		}
		if h := x.GetHeld(); h != "" {
			fmt.Fprintf(w, "    held:     %s\n", printable(h))
		}
	}
}

// coverageLine reads "enforcing N of M nodes (P%)". P is rounded down, so 100% means every node enforces; a workload
// no node runs is fully covered (as the aggregator's coverage ratio says).
func coverageLine(enforcing, running uint32) string {
	pct := uint64(100)
	if running > 0 {
		pct = uint64(enforcing) * 100 / uint64(running)
	}
	return fmt.Sprintf("enforcing %d of %d nodes (%d%%)", enforcing, running, pct)
}

// boundedList joins the first maxListed items and counts the rest of total ("a, b, c +K more").
func boundedList[T any](items []T, total int, name func(T) string) string {
	shown := min(len(items), maxListed)
	parts := make([]string, 0, shown)
	for _, it := range items[:shown] {
		parts = append(parts, name(it))
	}
	s := strings.Join(parts, ", ")
	if rest := total - shown; rest > 0 {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("+%d more", rest)
	}
	return s
}

// printable replaces control characters: node names and refusal reasons come from agents' reports, and must not
// forge lines of the output.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
}
