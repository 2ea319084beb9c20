package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/alerting"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"sigs.k8s.io/yaml"
)

// TestGeneratedFilesFresh fails when the committed dashboards/provisioning files differ from what the code generates.
func TestGeneratedFilesFresh(t *testing.T) {
	rules, err := os.ReadFile("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, err := Render(rules)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.FromSlash(name))
		if err != nil {
			t.Errorf("%s: %v (run make dashboards)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make dashboards and commit", name)
		}
	}
}

// TestMetricNamesDocumented checks that the test exporter serves exactly the documented metric names and that every
// metric a panel or alert uses is documented in docs/interfaces.md.
func TestMetricNamesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/interfaces.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, n := range documentedMetrics(string(doc)) {
		documented[n] = true
	}
	if len(documented) < 30 {
		t.Fatalf("parsed only %d metric names from docs/interfaces.md: %v", len(documented), documented)
	}
	f := newFakeFleet(t)
	for n := range documented {
		if !f.names[n] {
			t.Errorf("documented metric %s is not served by the test exporter", n)
		}
	}
	for n := range f.names {
		if !documented[n] {
			t.Errorf("test exporter serves undocumented metric %s", n)
		}
	}
	var used []string
	for _, file := range []string{"json/fanout-fleet.json", "json/fanout-agents.json", "../deploy/prometheus/rules.yaml"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		used = append(used, regexp.MustCompile(`fanout_[a-z_]+`).FindAllString(string(raw), -1)...)
	}
	for _, n := range used {
		if !documented[n] {
			t.Errorf("dashboards/alerts use undocumented metric %s", n)
		}
	}
}

// TestGrafanaAlertsMatchPrometheusRules checks the Grafana provisioning carries every Prometheus alert with the same
// expression, duration and labels.
func TestGrafanaAlertsMatchPrometheusRules(t *testing.T) {
	raw, err := os.ReadFile("../deploy/prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := ParsePromRules(raw)
	if err != nil {
		t.Fatal(err)
	}
	raw, err = os.ReadFile("provisioning/alerting/fanout-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var graf struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				UID    string            `json:"uid"`
				Title  string            `json:"title"`
				For    string            `json:"for"`
				Labels map[string]string `json:"labels"`
				Data   []struct {
					Model struct {
						Expr string `json:"expr"`
					} `json:"model"`
				} `json:"data"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &graf); err != nil {
		t.Fatal(err)
	}
	type key struct{ group, alert string }
	got := map[key]string{}
	for _, g := range graf.Groups {
		for _, r := range g.Rules {
			got[key{g.Name, r.Title}] = fmt.Sprintf("%s|%s|%v|%s", r.UID, r.For, r.Labels, r.Data[0].Model.Expr)
		}
	}
	n := 0
	for _, g := range prom.Groups {
		for _, r := range g.Rules {
			n++
			forArg := r.For
			if forArg == "" {
				forArg = "0s"
			}
			want := fmt.Sprintf("%s|%s|%v|%s", ruleUID(r.Alert), forArg, r.Labels, r.Expr)
			if got[key{g.Name, r.Alert}] != want {
				t.Errorf("grafana rule %s/%s:\n got %s\nwant %s", g.Name, r.Alert, got[key{g.Name, r.Alert}], want)
			}
		}
	}
	if len(got) != n {
		t.Errorf("grafana provisioning has %d rules, prometheus %d", len(got), n)
	}

	// Each provisioned rule must also decode strictly as the SDK's alerting.Rule (no unknown or mistyped fields).
	plugins.RegisterDefaultPlugins()
	var generic struct {
		Groups []struct {
			Name  string           `json:"name"`
			Rules []map[string]any `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, g := range generic.Groups {
		for _, m := range g.Rules {
			// The file format names org, folder and group once per group; the API form the SDK models, per rule.
			m["orgID"], m["folderUID"], m["ruleGroup"] = 1, "fanout", g.Name
			r, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			var rule alerting.Rule
			err = rule.UnmarshalJSONStrict(r)
			if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
				err = nil
			}
			if err != nil {
				t.Errorf("grafana rule does not decode strictly: %v\n%s", err, r)
			} else if rule.Condition != "B" || len(rule.Data) != 2 {
				t.Errorf("grafana rule %s: condition %q with %d queries", rule.Title, rule.Condition, len(rule.Data))
			}
		}
	}
}

// TestDashboardsDecodeWithSDK decodes the committed JSON back with the SDK's strict unmarshaller (what Grafana's
// schema accepts) and checks panel layout basics.
func TestDashboardsDecodeWithSDK(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	for _, f := range []string{"json/fanout-fleet.json", "json/fanout-agents.json"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard.Dashboard
		err = d.UnmarshalJSONStrict(raw)
		// v0.0.22 returns an empty cog.BuildErrors (non-nil interface) on success.
		if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
			err = nil
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if d.Uid == nil || *d.Uid == "" || len(d.Panels) < 8 {
			t.Fatalf("%s: uid %v, %d panels", f, d.Uid, len(d.Panels))
		}
		ids := map[uint32]bool{}
		for _, p := range d.Panels {
			if p.Panel == nil {
				continue
			}
			if p.Panel.Id == nil || ids[*p.Panel.Id] {
				t.Errorf("%s: panel %v has a missing or duplicate id", f, p.Panel.Title)
				continue
			}
			ids[*p.Panel.Id] = true
		}
	}
}

// TestGroupInterval: Grafana evaluates a group as often as its shortest `for` needs (so `for: 30s` fires after 30 s,
// not after the next minute), and every minute otherwise.
func TestGroupInterval(t *testing.T) {
	for _, c := range []struct {
		fors []string
		want string
	}{
		{nil, "1m"},
		{[]string{"", "2m", "15m", "1d"}, "1m"},
		{[]string{"2m", "30s"}, "30s"},
		{[]string{"45s"}, "40s"},
		{[]string{"5s"}, "10s"},
	} {
		var rules []PromRule
		for _, f := range c.fors {
			rules = append(rules, PromRule{Alert: "A", For: f})
		}
		if got := groupInterval(rules); got != c.want {
			t.Errorf("groupInterval(%v) = %s, want %s", c.fors, got, c.want)
		}
	}
}
