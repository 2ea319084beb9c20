package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Fleet is the fleet-wide dashboard: API traffic by workload, synchronization, detection state and decisions, and the
// enforcement of trips (coverage, held releases).
func Fleet() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("fanout / fleet").
		Uid("fanout-fleet").
		Description("Per-workload API-server traffic across the fleet and the fanout kill switch.").
		Tags([]string{"fanout", "kubernetes", "apiserver"}).
		Refresh("10s").Time("now-1h", "now").Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
	b = variables(b).
		WithRow(dashboard.NewRowBuilder("Overview")).
		WithPanel(single("Nodes reporting", "Nodes whose agent reported in the last window.", "short",
			`max(fanout_aggregator_nodes_reporting)`)).
		WithPanel(single("Workloads tripped", "Workloads currently cut off from the API server.", "short",
			`count(max by (workload) (fanout_workload_state{state="trip"}) == 1) or vector(0)`)).
		WithPanel(single("API server utilization", "Fleet load against the modelled API-server capacity.", "percentunit",
			`max(fanout_apiserver_utilization_ratio)`)).
		WithPanel(single("Reports ingested", "Agent reports per second, all aggregator replicas.", "reqps",
			`sum(rate(fanout_aggregator_reports_total[$__rate_interval]))`)).
		WithRow(dashboard.NewRowBuilder("API traffic by workload")).
		WithPanel(series("Fleet API request rate by workload", "Requests/s the aggregator attributes to each workload, fleet-wide (top 10).", "reqps",
			`topk(10, max by (workload) (fanout_workload_fleet_requests_per_second{`+WorkloadFilter+`}))`, "{{workload}}")).
		WithPanel(series("Fleet API response volume by workload", "Bytes/s the API server sends each workload, fleet-wide (top 10).", "Bps",
			`topk(10, max by (workload) (fanout_workload_fleet_rx_bytes_per_second{`+WorkloadFilter+`}))`, "{{workload}}")).
		WithPanel(series("Fleet API connects by workload", "New connections/s to the API server by workload (top 10).", "cps",
			`topk(10, max by (workload) (fanout_workload_fleet_connects_per_second{`+WorkloadFilter+`}))`, "{{workload}}")).
		WithPanel(series("Agent-counted request rate by workload", "Sum over all agents' per-workload request counters (Prometheus view, top 10).", "reqps",
			`topk(10, sum by (workload) (rate(fanout_workload_api_requests_total{`+WorkloadFilter+`}[$__rate_interval])))`, "{{workload}}")).
		WithRow(dashboard.NewRowBuilder("API server headroom (learned)")).
		WithPanel(series("Learned capacity: requests", "API server capacity in fleet requests/s, learned from its flow-control telemetry against fanout's load (or told by flag).", "reqps",
			`max by (source) (fanout_headroom_capacity{unit="requests_per_second"})`, "{{source}}")).
		WithPanel(series("Learned capacity: response bytes", "API server capacity in fleet response bytes/s, learned (or told by flag).", "Bps",
			`max by (source) (fanout_headroom_capacity{unit="rx_bytes_per_second"})`, "{{source}}")).
		WithPanel(series("API server utilization by signal", "Seats executing over the nominal limit (seats), latency against its baseline (latency), the nodes' view (nodes), and the one in use (used).", "percentunit",
			`max by (source) (fanout_headroom_utilization_ratio) >= 0`, "{{source}}")).
		WithPanel(series("Headroom confidence", "Confidence in the learned capacity (0..1).", "percentunit",
			`max(fanout_headroom_confidence)`, "confidence")).
		WithPanel(series("API server metrics scrape", "Duration of the aggregator's last read of each API server replica's /metrics (absent: not configured); failures show as gaps in success.", "s",
			`max by (replica) (fanout_headroom_scrape_duration_seconds)`, "{{replica}}")).
		WithPanel(series("API server metrics scrape failures", "Failed reads of each replica's flow-control metrics per second.", "short",
			`sum by (replica) (rate(fanout_headroom_scrape_failures_total[$__rate_interval]))`, "{{replica}}")).
		WithRow(dashboard.NewRowBuilder("Detection and kill switch")).
		WithPanel(series("Synchronized nodes by workload", "Nodes on which the workload surges in the same window.", "short",
			`max by (workload) (fanout_workload_synchronized_nodes{`+WorkloadFilter+`})`, "{{workload}}")).
		WithPanel(series("Projected load ratio by workload", "Projected API-server load at full fleet size, as a fraction of capacity.", "percentunit",
			`max by (workload) (fanout_workload_projected_load_ratio{`+WorkloadFilter+`})`, "{{workload}}")).
		WithPanel(stateTimeline()).
		WithPanel(bars("Decisions (trip / release / alert)", "Kill-switch decisions per interval by action and workload.",
			`sum by (action, workload) (`+increaseSinceBirth(`fanout_decisions_total{`+WorkloadFilter+`}`)+`) > 0`, "{{action}} {{workload}}").Span(24)).
		WithRow(dashboard.NewRowBuilder("Enforcement (closed loop)")).
		WithPanel(series("Enforcement coverage by tripped workload", "Nodes enforcing the block at the trip's epoch over nodes running the workload, as the aggregator replica that sees most enforcing reports it (alert FanoutEnforcementIncomplete below 100 % for 30 s; `fanoutctl status` names the laggards and refusals).", "percentunit",
			`max by (workload) (fanout_workload_enforcement_coverage_ratio{`+WorkloadFilter+`})`, "{{workload}}").Max(1)).
		WithPanel(series("Nodes enforcing and running by tripped workload", "Nodes that report the block at the trip's epoch (enforcing) and nodes that run the workload (running).", "short",
			`max by (workload) (fanout_workload_enforcement_nodes_enforcing{`+WorkloadFilter+`})`, "{{workload}} enforcing").
			WithTarget(query(`max by (workload) (fanout_workload_enforcement_nodes_running{`+WorkloadFilter+`})`, "{{workload}} running"))).
		WithPanel(series("Releases held for headroom", "1 while a tripped workload's due release is held because its projected return does not fit the learned API server headroom (alert FanoutReleaseHeldForHeadroom).", "short",
			`max by (workload) (fanout_workload_release_held{`+WorkloadFilter+`})`, "{{workload}}").Max(1).Span(24))
	return b.Build()
}
