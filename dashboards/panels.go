package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/statetimeline"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasource is the dashboard-level Prometheus data source variable every panel uses.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// WorkloadFilter is the label matcher panels use for the dashboard's workload variable.
const WorkloadFilter = `workload=~"$workload"`

func query(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).LegendFormat(legend).Datasource(datasource)
}

func series(title, desc, unit, expr, legend string) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).Description(desc).Unit(unit).Datasource(datasource).
		Height(8).Span(12).Min(0).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeTable).Placement(common.LegendPlacementRight).ShowLegend(true).
			Calcs([]string{"max", "lastNotNull"})).
		WithTarget(query(expr, legend))
}

// increaseSinceBirth is increase(sel[$__rate_interval]) that also counts a counter series born inside the window, at
// its full value. The aggregator creates a decision series at its first decision (value 1), and increase() needs a
// sample before the increment, so without this a workload's first trip never shows.
func increaseSinceBirth(sel string) string {
	born := "(" + sel + " unless " + sel + " offset $__rate_interval)"
	return "(increase(" + sel + "[$__rate_interval]) unless " + born + ") or " + born
}

func bars(title, desc, expr, legend string) *timeseries.PanelBuilder {
	return series(title, desc, "short", expr, legend).
		DrawStyle(common.GraphDrawStyleBars).FillOpacity(80).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

func single(title, desc, unit, expr string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).Description(desc).Unit(unit).Datasource(datasource).
		Height(4).Span(6).
		GraphMode(common.BigValueGraphModeArea).
		WithTarget(query(expr, ""))
}

// workloadStates is the numeric encoding of fanout_workload_state used by the state timeline.
var workloadStates = []struct {
	state, color string
	value        int
}{
	{"observe", "green", 0},
	{"alert", "yellow", 1},
	{"trip", "red", 2},
	{"releasing", "orange", 3},
	{"released", "blue", 4},
}

// stateExpr folds the one-hot fanout_workload_state{state} series into one numeric series per workload.
func stateExpr() string {
	expr := "max by (workload) ("
	for i, s := range workloadStates {
		if i > 0 {
			expr += " or "
		}
		expr += "(fanout_workload_state{state=\"" + s.state + "\"," + WorkloadFilter + "} == 1) * " + itoa(s.value)
	}
	return expr + ")"
}

func stateTimeline() *statetimeline.PanelBuilder {
	opts := map[string]dashboard.ValueMappingResult{}
	for i, s := range workloadStates {
		opts[itoa(s.value)] = dashboard.ValueMappingResult{
			Text: cog.ToPtr(s.state), Color: cog.ToPtr(s.color), Index: cog.ToPtr(int32(i)),
		}
	}
	return statetimeline.NewPanelBuilder().
		Title("Kill-switch state by workload").
		Description("observe → alert → trip → releasing → released, from the aggregator's state machine (fanout_workload_state).").
		Datasource(datasource).Height(8).Span(24).
		Mappings([]dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{Type: dashboard.MappingTypeValueToText, Options: opts}}}).
		WithTarget(query(stateExpr(), "{{workload}}"))
}

func itoa(v int) string {
	const digits = "0123456789"
	if v < 10 {
		return digits[v : v+1]
	}
	return itoa(v/10) + digits[v%10:v%10+1]
}

func variables(b *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return b.
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus")).
		WithVariable(dashboard.NewQueryVariableBuilder("workload").Label("Workload").
			Datasource(datasource).
			Query(dashboard.StringOrMap{String: cog.ToPtr("label_values(fanout_workload_state, workload)")}).
			Definition("label_values(fanout_workload_state, workload)").
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).IncludeAll(true).AllValue(".*"))
}
