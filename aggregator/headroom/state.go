package headroom

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"os"
	"path/filepath"
	"time"
)

// StateVersion is the version of the state file format.
const StateVersion = 1

// MaxStateBytes bounds the state file read by Restore.
const MaxStateBytes = 1 << 20

// state is what survives a restart: the fit's points and the learned latency baselines. Per-replica scrape state is
// not kept (counters restart their deltas).
type state struct {
	Version int     `json:"version"`
	SavedAt int64   `json:"saved_at"`
	Points  []point `json:"points"`
	// DurBase is the baseline of the request duration of every kind together (state files of earlier versions, and
	// sources that do not tell kinds apart); LatencyBase holds the per-kind baselines.
	DurBase     float64            `json:"duration_baseline_s"`
	LatencyBase map[string]float64 `json:"latency_baselines_s,omitempty"`
	NodeBase    float64            `json:"node_latency_baseline_s"`
	// CalmRequests and CalmRxBytes: the most load served below saturation since the last saturation point.
	CalmRequests float64 `json:"calm_requests_per_s,omitempty"`
	CalmRxBytes  float64 `json:"calm_rx_bytes_per_s,omitempty"`
}

// MarshalState returns the estimator's state.
func (e *Estimator) MarshalState(now time.Time) ([]byte, error) {
	st := state{Version: StateVersion, SavedAt: now.Unix(), Points: e.points, LatencyBase: e.latBase.snapshot(), NodeBase: e.nodeBase,
		CalmRequests: e.calm.Requests, CalmRxBytes: e.calm.RxBytes}
	st.DurBase = st.LatencyBase[""]
	if st.Points == nil {
		st.Points = []point{}
	}
	b, err := json.Marshal(&st)
	if err != nil {
		return nil, fmt.Errorf("marshal headroom state: %w", err)
	}
	return b, nil
}

// UnmarshalState replaces the estimator's learned state with data and refits at now. Points beyond the configured
// bound are dropped (oldest first); invalid values reject the whole state.
func (e *Estimator) UnmarshalState(data []byte, now time.Time) error {
	if len(data) > MaxStateBytes {
		return fmt.Errorf("headroom state: %d bytes, more than %d", len(data), MaxStateBytes)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("decode headroom state: %w", err)
	}
	if st.Version != StateVersion {
		return fmt.Errorf("headroom state: version %d, want %d", st.Version, StateVersion)
	}
	for _, v := range []float64{st.DurBase, st.NodeBase} {
		if !finite(v) || v < 0 || v > maxSeconds {
			return fmt.Errorf("headroom state: latency baseline %v out of range", v)
		}
	}
	if !finite(st.CalmRequests) || !finite(st.CalmRxBytes) || st.CalmRequests < 0 || st.CalmRxBytes < 0 {
		return fmt.Errorf("headroom state: calm load %v req/s, %v B/s invalid", st.CalmRequests, st.CalmRxBytes)
	}
	for i, p := range st.Points {
		if !finite(p.R) || !finite(p.X) || !finite(p.U) || p.R < 0 || p.X < 0 || p.U < 0 || p.U > 10 || p.T <= 0 || p.T > now.Unix()+60 {
			return fmt.Errorf("headroom state: point %d invalid", i)
		}
	}
	if n := len(st.Points); n > e.cfg.MaxPoints {
		st.Points = st.Points[n-e.cfg.MaxPoints:]
	}
	if st.LatencyBase == nil && st.DurBase > 0 {
		st.LatencyBase = map[string]float64{"": st.DurBase}
	}
	if err := e.latBase.restore(st.LatencyBase); err != nil {
		return fmt.Errorf("headroom state: %w", err)
	}
	e.points = append(e.points[:0], st.Points...)
	e.nodeBase = st.NodeBase
	e.calm = Load{Requests: st.CalmRequests, RxBytes: st.CalmRxBytes}
	e.refit(now.Unix())
	e.estimate(now, false, Load{})
	return nil
}

// Save writes the state to path atomically (temporary file in the same folder, fsync, rename).
func (e *Estimator) Save(path string, now time.Time) error {
	data, err := e.MarshalState(now)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save headroom state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save headroom state: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save headroom state: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save headroom state: close: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save headroom state: rename: %w", err)
	}
	return nil
}

// Restore loads the state saved at path. A missing file is not an error (cold start): it returns false.
func (e *Estimator) Restore(path string, now time.Time) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("restore headroom state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxStateBytes+1))
	if err != nil {
		return false, fmt.Errorf("restore headroom state: read: %w", err)
	}
	if err := e.UnmarshalState(data, now); err != nil {
		return false, fmt.Errorf("restore headroom state from %s: %w", path, err)
	}
	return true, nil
}
