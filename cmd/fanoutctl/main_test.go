package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplayJSONLinesAndSummary(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"replay", "../../scenarios/daemonset-config-flip.yaml", "--json"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	text := out.String()
	sc := bufio.NewScanner(strings.NewReader(text))
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) < 2 {
		t.Fatalf("want decisions and a summary, got %d lines", len(lines))
	}
	for _, m := range lines[:len(lines)-1] {
		if len(m) != 4 || m["t"] == nil || m["workload"] == nil || m["reason"] == nil {
			t.Fatalf("decision line %v: want exactly t, action, workload, reason", m)
		}
		switch m["action"] {
		case "trip", "release", "alert":
		default:
			t.Fatalf("bad action in %v", m)
		}
	}
	sum, ok := lines[len(lines)-1]["summary"].(map[string]any)
	if !ok || len(lines[len(lines)-1]) != 1 {
		t.Fatalf("last line is not {\"summary\":{...}}: %v", lines[len(lines)-1])
	}
	if sum["trips"].(float64) < 1 {
		t.Fatalf("summary: %v", sum)
	}
	// Field order of decision lines is fixed.
	first := strings.SplitN(text, "\n", 2)[0]
	if !strings.HasPrefix(first, `{"t":`) || strings.Index(first, `"action"`) > strings.Index(first, `"workload"`) || strings.Index(first, `"workload"`) > strings.Index(first, `"reason"`) {
		t.Fatalf("field order: %s", first)
	}
}

func TestReplayIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		if code := run(context.Background(), []string{"replay", "--json", "../../scenarios/hot-controller-overload.yaml"}, buf, &bytes.Buffer{}); code != 0 {
			t.Fatalf("exit %d", code)
		}
	}
	if a.String() != b.String() {
		t.Fatalf("two runs differ:\n%s\n---\n%s", a.String(), b.String())
	}
}

func TestReplayMalformedFileExits2NamingLineAndField(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(p, []byte("version: 1\nduration: 60s\nnodes: 10\nworkloads:\n  - name: Deployment/a/b\n    per_pod: {requests_per_s: fast}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"replay", p, "--json"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2 (stderr %s)", code, errb.String())
	}
	msg := errb.String()
	if !strings.Contains(msg, "line 6") || !strings.Contains(msg, "workloads[0].per_pod.requests_per_s") {
		t.Fatalf("message does not name line and field: %s", msg)
	}
	if out.Len() != 0 {
		t.Fatalf("stdout not empty: %s", out.String())
	}
}

func TestUnknownCommandAndUsage(t *testing.T) {
	if code := run(context.Background(), []string{"frobnicate"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("exit %d", code)
	}
	if code := run(context.Background(), []string{"replay"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("replay without file: exit %d", code)
	}
}
