package audit

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// Log is a JSON-lines audit log. Safe for concurrent use.
type Log struct {
	mu      sync.Mutex
	enc     *json.Encoder
	replica string
	now     func() time.Time
	logger  *slog.Logger
}

// Record is one audit line.
type Record struct {
	Time    time.Time `json:"time"`
	Replica string    `json:"replica,omitempty"`
	killswitch.Decision
}

// New returns a log writing to w. now may be nil (wall clock).
func New(w io.Writer, replica string, now func() time.Time, logger *slog.Logger) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{enc: json.NewEncoder(w), replica: replica, now: now, logger: logger.With("component", "audit")}
}

// Record writes one decision; write errors are logged, never fatal to deciding.
func (l *Log) Record(d killswitch.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.enc.Encode(Record{Time: l.now().UTC(), Replica: l.replica, Decision: d}); err != nil {
		l.logger.Error("write audit record", "err", err, "workload", d.Workload, "action", d.Action)
	}
	l.logger.Info("decision", "action", d.Action, "workload", d.Workload, "epoch", d.Epoch, "dry_run", d.DryRun, "reason", d.Reason)
}
