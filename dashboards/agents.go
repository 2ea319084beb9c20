package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Agents is the node-side dashboard: agent health, BPF map pressure, reporting and enforcement.
func Agents() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("fanout / agents").
		Uid("fanout-agents").
		Description("fanout agents: health, BPF map pressure, reporting to the aggregators, enforcement.").
		Tags([]string{"fanout", "kubernetes", "ebpf"}).
		Refresh("30s").Time("now-1h", "now").Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
	b = variables(b).
		WithRow(dashboard.NewRowBuilder("Agent health")).
		WithPanel(single("Agents scraping OK", "Agents whose last read of their BPF maps succeeded.", "short",
			`sum(fanout_agent_scrape_success)`)).
		WithPanel(single("Agents failing", "Agents whose last read of their BPF maps failed.", "short",
			`count(fanout_agent_scrape_success == 0) or vector(0)`)).
		WithPanel(single("Agents without aggregator", "Agents connected to no aggregator address.", "short",
			`count(max by (instance) (fanout_agent_aggregator_connected) == 0) or vector(0)`)).
		WithPanel(single("Unknown cgroups", "Cgroups with traffic the agents could not map to a pod or unit, fleet total.", "short",
			`sum(fanout_agent_unknown_cgroups)`)).
		WithPanel(series("BPF map read duration", "Time each agent takes to read its counters (slowest 10).", "s",
			`topk(10, max by (instance) (fanout_agent_scrape_duration_seconds))`, "{{instance}}")).
		WithPanel(series("Agent versions", "Running agents and aggregators by version.", "short",
			`count by (version) (fanout_build_info)`, "{{version}}")).
		WithRow(dashboard.NewRowBuilder("Map pressure")).
		WithPanel(series("Map fill ratio", "Entries / max entries of each BPF map (fullest 10 agent maps).", "percentunit",
			`topk(10, max by (instance, map) (fanout_agent_map_entries / fanout_agent_map_max_entries))`, "{{instance}} {{map}}").Max(1)).
		WithPanel(series("Map full events", "Failed inserts because a BPF map was full.", "short",
			`sum by (instance, map) (increase(fanout_agent_map_full_total[$__rate_interval]))`, "{{instance}} {{map}}")).
		WithRow(dashboard.NewRowBuilder("Reporting")).
		WithPanel(series("Reports sent / errors", "Report stream to the aggregators, all agents.", "ops",
			`sum(rate(fanout_agent_reports_sent_total[$__rate_interval]))`, "sent").
			WithTarget(query(`sum(rate(fanout_agent_report_errors_total[$__rate_interval]))`, "errors"))).
		WithPanel(series("Reports rejected by aggregator", "Reports the aggregators refused, by reason.", "ops",
			`sum by (reason) (rate(fanout_aggregator_reports_rejected_total[$__rate_interval]))`, "{{reason}}")).
		WithRow(dashboard.NewRowBuilder("Enforcement")).
		WithPanel(series("Active blocks by workload", "Nodes on which each workload is currently blocked.", "short",
			`sum by (workload) (fanout_agent_blocks_active{`+WorkloadFilter+`})`, "{{workload}}")).
		WithPanel(series("Connects denied by workload", "API-server connects denied in the kernel, fleet-wide.", "cps",
			`sum by (workload) (rate(fanout_agent_connects_denied_total{`+WorkloadFilter+`}[$__rate_interval]))`, "{{workload}}")).
		WithPanel(series("Sockets destroyed by workload", "Established API-server connections torn down on block.", "ops",
			`sum by (workload) (rate(fanout_agent_sockets_destroyed_total{`+WorkloadFilter+`}[$__rate_interval]))`, "{{workload}}")).
		WithPanel(series("Blocks refused", "Directives the agents refused (protected workloads, limits), by reason.", "ops",
			`sum by (workload, reason) (rate(fanout_agent_block_refused_total{`+WorkloadFilter+`}[$__rate_interval]))`, "{{workload}} {{reason}}"))
	return b.Build()
}
