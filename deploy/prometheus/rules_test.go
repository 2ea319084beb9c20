package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// promtool returns the promtool binary, or skips when it is missing and privileged/CI runs are not required.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("FANOUT_REQUIRE_PRIVILEGED") == "1" {
			t.Fatalf("promtool not found (Debian package prometheus): %v", err)
		}
		t.Skip("promtool not installed (Debian package prometheus)")
	}
	return p
}

func TestRulesCheck(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", "rules.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

func TestRulesUnitTests(t *testing.T) {
	files, err := filepath.Glob("tests/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule tests found: %v", err)
	}
	out, err := exec.Command(promtool(t), append([]string{"test", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "SUCCESS"); n != len(files) {
		t.Fatalf("want %d successful test files, got %d:\n%s", len(files), n, out)
	}
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert string `json:"alert"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestEveryAlertIsUnitTested fails when an alert in rules.yaml has no alert_rule_test case with expected alerts.
func TestEveryAlertIsUnitTested(t *testing.T) {
	raw, err := os.ReadFile("rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("parse rules.yaml: %v", err)
	}
	files, _ := filepath.Glob("tests/*.yaml")
	var tests strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tests.Write(b)
	}
	n := 0
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			n++
			if !strings.Contains(tests.String(), "alertname: "+r.Alert+"\n        exp_alerts:\n          - ") {
				t.Errorf("alert %s has no unit test that expects it to fire", r.Alert)
			}
		}
	}
	for _, want := range []string{"FanoutSurgeDetected", "FanoutTripActive", "FanoutAgentDown", "FanoutAgentMapFull",
		"FanoutAggregatorUnreachable", "FanoutReportsRejected"} {
		if !strings.Contains(string(raw), "alert: "+want+"\n") {
			t.Errorf("required alert %s missing", want)
		}
	}
	t.Logf("%d alerts, all unit-tested", n)
}
