package dashboards

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/alerting"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/expr"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"sigs.k8s.io/yaml"
)

// AlertDatasourceUID is the UID of the Prometheus data source the Grafana alert rules query; the data source
// provisioning file (provisioning/datasources/fanout-prometheus.yaml) creates it.
const AlertDatasourceUID = "fanout-prometheus"

// PromRuleFile is the subset of a Prometheus rule file the Grafana conversion reads.
type PromRuleFile struct {
	Groups []PromRuleGroup `json:"groups"`
}

// PromRuleGroup is one group of a Prometheus rule file.
type PromRuleGroup struct {
	Name  string     `json:"name"`
	Rules []PromRule `json:"rules"`
}

// PromRule is one alerting rule.
type PromRule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ParsePromRules parses a Prometheus rule file (deploy/prometheus/rules.yaml), strictly.
func ParsePromRules(raw []byte) (PromRuleFile, error) {
	var f PromRuleFile
	if err := yaml.UnmarshalStrict(raw, &f); err != nil {
		return f, fmt.Errorf("parse prometheus rules: %w", err)
	}
	if len(f.Groups) == 0 {
		return f, fmt.Errorf("parse prometheus rules: no groups")
	}
	return f, nil
}

var promValue = regexp.MustCompile(`\$value\b`)

// grafanaRule converts one Prometheus alert into a Grafana-managed rule: query A is the alert's PromQL as an instant
// query (a series is returned exactly when the Prometheus alert would be pending/firing), condition B is the math
// expression `$A == $A`, true for every returned series whatever its value (PromQL filters such as `== 0` keep 0).
func grafanaRule(group string, r PromRule) (map[string]any, error) {
	forArg := r.For
	if forArg == "" {
		forArg = "0s"
	}
	ann := map[string]string{}
	for k, v := range r.Annotations {
		ann[k] = promValue.ReplaceAllString(v, "$$values.A.Value")
	}
	rule, err := alerting.NewRuleBuilder(r.Alert).
		Uid(ruleUID(r.Alert)).
		RuleGroup(group).FolderUID("fanout").OrgID(1).
		Condition("B").
		For(forArg).
		Labels(r.Labels).
		Annotations(ann).
		NoDataState(alerting.RuleNoDataStateOK).
		ExecErrState(alerting.RuleExecErrStateError).
		WithQuery(alerting.NewQueryBuilder("A").
			DatasourceUid(AlertDatasourceUID).
			RelativeTimeRange(600, 0).
			Model(prometheus.NewDataqueryBuilder().Expr(r.Expr).Instant().RefId("A"))).
		WithQuery(alerting.NewQueryBuilder("B").
			DatasourceUid("__expr__").
			Model(expr.NewExprBuilder().TypeMath(expr.NewTypeMathBuilder().Expression("$A == $A").RefId("B")))).
		Build()
	if err != nil {
		return nil, fmt.Errorf("build grafana rule %s/%s: %w", group, r.Alert, err)
	}
	raw, err := json.Marshal(rule)
	if err != nil {
		return nil, fmt.Errorf("encode grafana rule %s: %w", r.Alert, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("decode grafana rule %s: %w", r.Alert, err)
	}
	// The file provisioning format names org, folder and group on the group, not on each rule.
	for _, k := range []string{"orgID", "folderUID", "ruleGroup"} {
		delete(m, k)
	}
	return m, nil
}

func ruleUID(alert string) string {
	uid := "fanout-" + strings.ToLower(strings.TrimPrefix(alert, "Fanout"))
	if len(uid) > 40 {
		uid = uid[:40]
	}
	return uid
}

// GrafanaAlerts renders Grafana alert provisioning (apiVersion 1) carrying the same alerts as the Prometheus rule file.
func GrafanaAlerts(promRules []byte) ([]byte, error) {
	f, err := ParsePromRules(promRules)
	if err != nil {
		return nil, err
	}
	type group struct {
		OrgID    int              `json:"orgId"`
		Name     string           `json:"name"`
		Folder   string           `json:"folder"`
		Interval string           `json:"interval"`
		Rules    []map[string]any `json:"rules"`
	}
	out := struct {
		APIVersion int     `json:"apiVersion"`
		Groups     []group `json:"groups"`
	}{APIVersion: 1}
	for _, g := range f.Groups {
		gg := group{OrgID: 1, Name: g.Name, Folder: "fanout", Interval: groupInterval(g.Rules)}
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue // recording rules have no Grafana alert counterpart
			}
			m, err := grafanaRule(g.Name, r)
			if err != nil {
				return nil, err
			}
			gg.Rules = append(gg.Rules, m)
		}
		out.Groups = append(out.Groups, gg)
	}
	body, err := yaml.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode grafana alert provisioning: %w", err)
	}
	return append([]byte(generatedHeader("#")), body...), nil
}

// groupInterval is how often Grafana evaluates a group: every minute, or as often as the group's shortest positive
// `for` when that is shorter (in whole 10 s, at least 10 s). Grafana keeps a rule pending for whole evaluations, so a
// `for: 30s` evaluated every minute would fire only after a minute.
func groupInterval(rules []PromRule) string {
	iv := time.Minute
	for _, r := range rules {
		// Durations Go cannot parse ("1d") are longer than a minute.
		if d, err := time.ParseDuration(r.For); err == nil && d > 0 && d < iv {
			iv = d
		}
	}
	iv = max(iv.Truncate(10*time.Second), 10*time.Second)
	if iv%time.Minute == 0 {
		return fmt.Sprintf("%dm", iv/time.Minute)
	}
	return fmt.Sprintf("%ds", iv/time.Second)
}

var _ cog.Builder[alerting.Rule] = (*alerting.RuleBuilder)(nil)
