package remediate

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// EscalatorConfig configures when a held trip becomes a durable pause.
type EscalatorConfig struct {
	// After is how long a trip must hold before the workload is paused (e.g. --remediate.after=10m).
	After time.Duration
	// RetryEvery spaces attempts after a failed pause (forbidden, API unavailable); 30 s when zero.
	RetryEvery time.Duration
	// Remediator does the pausing (its DryRun applies).
	Remediator *Remediator
	Logger     *slog.Logger
}

// Escalator turns trips that hold longer than After into pauses. The aggregator calls Tick with its currently
// tripped workloads (by their Kind/namespace/name) once per decision interval; Escalator remembers since when each
// has been tripped and pauses it once. A released workload is forgotten (its pause, if any, stays until
// `fanoutctl undo`: undoing is a human decision). Not safe for concurrent use.
type Escalator struct {
	cfg   EscalatorConfig
	log   *slog.Logger
	trips map[string]*heldTrip
}

type heldTrip struct {
	since     time.Time
	done      bool // paused, protected or not pausable: nothing more to do
	nextRetry time.Time
}

// Outcome of one escalation attempt.
type Outcome struct {
	Workload string
	Result   Result
	Err      error
}

// NewEscalator returns an Escalator.
func NewEscalator(cfg EscalatorConfig) (*Escalator, error) {
	if cfg.Remediator == nil {
		return nil, errors.New("remediate: escalator needs a Remediator")
	}
	if cfg.After <= 0 {
		return nil, errors.New("remediate: escalator needs After > 0")
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Escalator{cfg: cfg, log: log.With("component", "remediate-escalator"), trips: map[string]*heldTrip{}}, nil
}

// Tick takes the workloads tripped now, each with the cause of its trip (Cause.DecidedAt, when set, is when the trip
// began; otherwise the first Tick that saw it), and pauses those held for at least After. It returns the attempts
// made during this call.
func (e *Escalator) Tick(ctx context.Context, now time.Time, tripped map[string]Cause) []Outcome {
	for w := range e.trips {
		if _, ok := tripped[w]; !ok {
			delete(e.trips, w)
		}
	}
	var out []Outcome
	for name, cause := range tripped {
		h := e.trips[name]
		if h == nil {
			h = &heldTrip{since: now}
			if !cause.DecidedAt.IsZero() && cause.DecidedAt.Before(now) {
				h.since = cause.DecidedAt
			}
			e.trips[name] = h
		}
		if h.done || now.Sub(h.since) < e.cfg.After || now.Before(h.nextRetry) {
			continue
		}
		w, err := ParseWorkload(name)
		if err != nil {
			// Pods, Jobs, host units...: the in-kernel block is all there is.
			h.done = true
			e.log.Info("trip held but workload cannot be paused", "workload", name, "err", err)
			continue
		}
		res, err := e.cfg.Remediator.Pause(ctx, w, cause)
		out = append(out, Outcome{Workload: name, Result: res, Err: err})
		switch {
		case err == nil:
			h.done = true
			e.log.Warn("trip held, workload paused", "workload", name, "held", now.Sub(h.since), "action", res.Action,
				"dry_run", res.DryRun, "reason", cause.Reason)
		case errors.Is(err, ErrProtected):
			h.done = true
			e.log.Info("trip held, workload protected from pausing", "workload", name)
		default:
			h.nextRetry = now.Add(e.cfg.RetryEvery)
			e.log.Error("trip held, pause failed", "workload", name, "err", err, "retry_at", h.nextRetry)
		}
	}
	return out
}
