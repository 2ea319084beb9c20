package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sample = `version: 1
name: telemetry-daemonset-rollout
seed: 42
duration: 600s
nodes: 2500
apiserver:
  capacity_requests_per_s: 3000
  capacity_rx_bytes_per_s: 1.5e9
workloads:
  - name: DaemonSet/kube-system/kube-proxy
    protected: true
    placement: all
    start: 0s
    rollout: 0s
    per_pod:
      requests_per_s: 0.2
      rx_bytes_per_request: 4000
      rx_bytes_scale: none
    phases:
      - at: 300s
        requests_per_s: 5
        for: 20s
  - name: DaemonSet/monitoring/telemetry-agent
    placement: all
    start: 120s
    rollout: 60s
    per_pod: {requests_per_s: 1, rx_bytes_per_request: 2500, rx_bytes_scale: pods}
`

func TestDecodeSpecExample(t *testing.T) {
	s, err := DecodeBytes([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if s.Nodes != 2500 || s.Seed != 42 || s.Duration != 600*time.Second || len(s.Workloads) != 2 {
		t.Fatalf("got %+v", s)
	}
	kp := s.Workloads[0]
	if !kp.Protected || kp.RequestsPerSAt(305*time.Second) != 5 || kp.RequestsPerSAt(320*time.Second) != 0.2 {
		t.Fatalf("kube-proxy: %+v", kp)
	}
	if s.Workloads[1].PerPod.RxBytesScale != ScalePods || s.APIServer.CapacityRxBytesPerS != 1.5e9 {
		t.Fatalf("telemetry: %+v", s.Workloads[1])
	}
}

func TestDecodeErrorsNameLineAndField(t *testing.T) {
	cases := []struct {
		edit  func(string) string
		line  int
		field string
	}{
		{func(s string) string { return strings.Replace(s, "nodes: 2500", "nodes: many", 1) }, 5, "nodes"},
		{func(s string) string { return strings.Replace(s, "version: 1", "version: 2", 1) }, 1, "version"},
		{func(s string) string {
			return strings.Replace(s, "      requests_per_s: 0.2", "      requests_per_s: -1", 1)
		}, 16, "workloads[0].per_pod.requests_per_s"},
		{func(s string) string { return strings.Replace(s, "    rollout: 60s", "    rolout: 60s", 1) }, 26, "workloads[1].rolout"},
		{func(s string) string {
			return strings.Replace(s, "placement: all\n    start: 120s", "placement: {count: 0}\n    start: 120s", 1)
		}, 24, "workloads[1].placement.count"},
		{func(s string) string { return strings.Replace(s, "rx_bytes_scale: pods", "rx_bytes_scale: racks", 1) }, 27, "workloads[1].per_pod.rx_bytes_scale"},
		{func(s string) string { return strings.Replace(s, "        for: 20s", "        for: soon", 1) }, 22, "workloads[0].phases[0].for"},
		{func(s string) string { return strings.Replace(s, "DaemonSet/kube-system/kube-proxy", "kube-proxy", 1) }, 10, "workloads[0].name"},
		{func(s string) string { return strings.Replace(s, "duration: 600s\n", "", 1) }, 1, "duration"},
		{func(s string) string { return s + "extra: 1\n" }, 28, "extra"},
		{func(s string) string { return strings.Replace(s, "seed: 42", "seed: [1", 1) }, 0, "file"},
	}
	for i, c := range cases {
		_, err := DecodeBytes([]byte(c.edit(sample)))
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("case %d: want *Error, got %v", i, err)
			continue
		}
		if se.Field != c.field || (c.line > 0 && se.Line != c.line) {
			t.Errorf("case %d: got line %d field %q (%v), want line %d field %q", i, se.Line, se.Field, err, c.line, c.field)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(sample))
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("version: 1\nnodes: 1\nduration: 1s\nworkloads: [{name: Pod/a/b, per_pod: {requests_per_s: 1}}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeBytes(data)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || se.Field == "" {
				t.Fatalf("error without a field: %v", err)
			}
			return
		}
		if s.Nodes < 1 || s.Nodes > MaxNodes || s.Duration < time.Second || len(s.Workloads) == 0 {
			t.Fatalf("accepted out-of-range scenario %+v", s)
		}
		for _, w := range s.Workloads {
			if w.PerPod.RequestsPerS < 0 || w.Placement.Pods(s.Nodes) < 1 {
				t.Fatalf("accepted bad workload %+v", w)
			}
		}
	})
}
