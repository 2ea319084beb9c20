package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/bench/internal/aggproc"
)

// attackStats counts what the attackers sent.
type attackStats struct {
	mu         sync.Mutex
	sent       map[string]int // reports by kind
	bytes      int64
	reconnects int
	errs       []string
}

func (s *attackStats) add(kind string, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent[kind]++
	s.bytes += int64(size)
}

func (s *attackStats) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 5 {
		s.errs = append(s.errs, err.Error())
	}
}

// attack runs one attacker until end: a new connection and stream every reconnect, and every second, offset into
// it, the second just ended reported four ways (valid or 1 ns, repeated, too wide, pods naming fresh workloads).
func attack(ctx context.Context, addr string, h *hostile, end time.Time, reconnect, offset time.Duration, stats *attackStats) {
	tick := 0
	for nextTick(offset).Before(end) && ctx.Err() == nil {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			stats.fail(fmt.Errorf("%s: dial: %w", h.node, err))
			return
		}
		until := time.Now().Add(reconnect)
		if until.After(end) {
			until = end
		}
		tick = attackStream(ctx, api.NewAggregatorClient(conn), h, until, offset, tick, stats)
		conn.Close()
		stats.mu.Lock()
		stats.reconnects++
		stats.mu.Unlock()
	}
}

// nextTick is when the next second's reports are due: offset after the current second ends.
func nextTick(offset time.Duration) time.Time {
	return time.Now().Truncate(time.Second).Add(time.Second + offset)
}

// attackStream sends on one stream until until, and returns the next tick.
func attackStream(ctx context.Context, c api.AggregatorClient, h *hostile, until time.Time, offset time.Duration, tick int, stats *attackStats) int {
	sctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+aggproc.NodeToken(h.node)))
	defer cancel()
	st, err := c.Report(sctx)
	if err != nil {
		stats.fail(fmt.Errorf("%s: open stream: %w", h.node, err))
		time.Sleep(100 * time.Millisecond)
		return tick
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	for {
		at := nextTick(offset)
		if !at.Before(until) {
			break
		}
		select {
		case <-ctx.Done():
			return tick
		case <-time.After(time.Until(at)):
		}
		sec := at.Unix() - 1
		first := kindValid
		if tick%2 == 1 {
			first = kindTinyIvl
		}
		for _, kind := range []string{first, kindRepeat, kindWide, kindBypass} {
			r := h.report(kind, sec)
			if err := st.Send(r); err != nil {
				stats.fail(fmt.Errorf("%s: send %s: %w", h.node, kind, err))
				return tick + 1
			}
			stats.add(kind, proto.Size(r))
		}
		tick++
	}
	// Hang up cleanly so that the last reports are read, then reconnect.
	_ = st.CloseSend()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	return tick
}
