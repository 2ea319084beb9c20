package fanoutguard

import "testing"

func TestParseSample(t *testing.T) {
	for _, c := range []struct {
		line, name string
		v          float64
		ok         bool
	}{
		{`fanout_apiserver_utilization_ratio 0.42`, "fanout_apiserver_utilization_ratio", 0.42, true},
		{`fanout_headroom_utilization_ratio{source="seats"} 0.9 1700000000000`, `fanout_headroom_utilization_ratio{source="seats"}`, 0.9, true},
		{`fanout_headroom_capacity{unit="requests_per_second",label="a b}"} 1e3`, `fanout_headroom_capacity{unit="requests_per_second",label="a b}"}`, 1000, true},
		{`# HELP fanout_apiserver_utilization_ratio x`, "", 0, false},
		{`fanout_x_bucket{le="1"} 3`, "", 0, false},
		{`fanout_headroom_confidence NaN`, "", 0, false},
		{`garbage`, "", 0, false},
	} {
		name, v, ok := parseSample(c.line)
		if name != c.name || v != c.v || ok != c.ok {
			t.Errorf("parseSample(%q) = %q, %g, %v; want %q, %g, %v", c.line, name, v, ok, c.name, c.v, c.ok)
		}
	}
	if !recorded("fanout_headroom_capacity") || recorded("fanout_workload_state") {
		t.Error("recorded prefixes")
	}
}

func TestProbeModeOf(t *testing.T) {
	for text, want := range map[string]string{
		"# HELP x\nfanout_agent_probe_mode{mode=\"sockops\"} 1\nfanout_agent_probe_handoff 0\n": "sockops",
		"fanout_agent_probe_mode{mode=\"cgroup_skb\"} 1\n":                                      "cgroup_skb",
		"fanout_agent_probe_mode{mode=\"sockops\"} 0\n":                                         "",
		"fanout_agent_blocks_active 0\n":                                                        "",
	} {
		if got := probeModeOf(text); got != want {
			t.Errorf("probeModeOf(%q) = %q, want %q", text, got, want)
		}
	}
}
