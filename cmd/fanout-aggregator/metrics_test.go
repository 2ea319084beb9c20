package main

import (
	"io"
	"strings"
	"testing"

	"github.com/fanoutdev/fanout/aggregator/metrics"
)

// --metrics.top-workloads bounds the per-workload series: default 200, 0 every workload, negative refused.
func TestMetricsTopWorkloadsFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		top  int
		want string // "" = accepted
	}{
		{nil, metrics.DefaultTopWorkloads, ""},
		{[]string{"--metrics.top-workloads=50"}, 50, ""},
		{[]string{"--metrics.top-workloads=0"}, 0, ""},
		{[]string{"--metrics.top-workloads=-1"}, 0, "want 0 (every workload) or more"},
	} {
		cfg, err := parseFlags(append([]string{"--auth.agent-token-file=/x", "--insecure"}, c.args...), io.Discard)
		if c.want == "" && (err != nil || cfg.Metrics.TopWorkloads != c.top) || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: top %d, %v; want top %d, error %q", c.args, cfg.Metrics.TopWorkloads, err, c.top, c.want)
		}
	}
}
