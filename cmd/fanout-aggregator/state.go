package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
)

// stateFile is the kill switch's trips on disk, rewritten (atomically) whenever they change, so a restarted
// aggregator restores them before it can release anything (finding 1 of issue 10).
type stateFile struct {
	Version int                `json:"version"`
	Trips   []killswitch.Saved `json:"trips"`
}

const maxStateBytes = 16 << 20

func loadState(path string) ([]killswitch.Saved, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("state file %s: %d bytes, at most %d", path, len(b), maxStateBytes)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode state file %s: %w", path, err)
	}
	return st.Trips, nil
}

func saveState(path string, trips []killswitch.Saved) error {
	b, err := json.Marshal(stateFile{Version: 1, Trips: trips})
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fanout-state-*")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace state file: %w", err)
	}
	return nil
}

// keepState writes the engine's trips to path whenever the directive set changes, until ctx ends.
func keepState(ctx context.Context, path string, eng *engine.Engine, logger *slog.Logger) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := eng.DirectivesVersion()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if v := eng.DirectivesVersion(); v != last {
			if err := saveState(path, eng.Snapshot()); err != nil {
				logger.Error("save kill-switch state", "err", err)
				continue
			}
			last = v
		}
	}
}
