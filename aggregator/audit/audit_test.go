package audit

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

func TestRecordWritesDecisionWithEvidence(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "r1", func() time.Time { return time.Unix(100, 0) }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.Record(killswitch.Decision{Second: 99, Action: killswitch.ActionTrip, Workload: "DaemonSet/a/b", Reason: "why", Epoch: 99,
		Evidence: killswitch.Evidence{Rule: "surge", SyncNodes: 40, EstablishedNodes: 50}})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	ev, _ := m["evidence"].(map[string]any)
	if m["replica"] != "r1" || m["action"] != "trip" || m["workload"] != "DaemonSet/a/b" || ev["synchronized_nodes"] != 40.0 || m["time"] != "1970-01-01T00:01:40Z" {
		t.Fatalf("record: %s", buf.String())
	}
}
