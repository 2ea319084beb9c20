package report

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
)

const wl = "DaemonSet/mon/telemetry"

func release(w string, epoch uint64) *api.Directive {
	return &api.Directive{Action: api.Directive_ACTION_RELEASE, Workload: w, Epoch: epoch,
		Ramp: &api.Ramp{Duration: durationpb.New(time.Minute), Steps: 4}, Issued: timestamppb.New(time.Unix(1000, 0))}
}

func set(inc, ver uint64, synced bool, ds ...*api.Directive) *api.DirectiveSet {
	return &api.DirectiveSet{Incarnation: inc, Version: ver, StateSynced: synced, Directives: ds}
}

// testClient is a Client without streams: sets are offered as the receive goroutines would.
func testClient(t *testing.T, mode string, replicas ...string) (*Client, *[]Directive) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Addresses, cfg.Node, cfg.Merge = replicas, "node-1", mode
	var got []Directive
	c, err := New(cfg, func(d Directive) { got = append(got, d) }, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range replicas {
		c.sets[a].connected = true
	}
	return c, &got
}

func (c *Client) offerApply(addr string, stream uint64, s *api.DirectiveSet) {
	if c.offer(addr, stream, s) {
		c.applyOnce(time.Now(), true)
	}
}

func last(got []Directive, w string) (Directive, bool) {
	for i := len(got) - 1; i >= 0; i-- {
		if got[i].Workload == w {
			return got[i], true
		}
	}
	return Directive{}, false
}

// Finding 7: a block of epoch E delivered late (an old stream of the replica, or an older version of its set) after
// the release of E cannot land.
func TestStaleBlockAfterReleaseCannotLand(t *testing.T) {
	c, got := testClient(t, MergeAny, "a")
	c.offerApply("a", 1, set(1, 1, true, block(wl, 10)))
	c.offerApply("a", 2, set(1, 3, true, release(wl, 10)))
	if d, _ := last(*got, wl); d.Block || d.Epoch != 10 || d.RampSteps != 4 || d.Issued.Unix() != 1000 {
		t.Fatalf("release not handed over with its ramp: %+v", d)
	}
	n := len(*got)
	c.offerApply("a", 1, set(1, 1, true, block(wl, 10))) // the old stream's late delivery
	c.offerApply("a", 2, set(1, 2, true, block(wl, 10))) // an older version on the current stream
	if len(*got) != n {
		t.Fatalf("stale block landed: %+v", (*got)[n:])
	}
	// A new trip (newer epoch) is a block again.
	c.offerApply("a", 2, set(1, 4, true, block(wl, 20)))
	if d, _ := last(*got, wl); !d.Block || d.Epoch != 20 {
		t.Fatalf("new trip not blocked: %+v", d)
	}
}

// Across replicas: a release of E supersedes a lagging replica's block of E; a block of a newer epoch supersedes
// the release.
func TestReleaseOfEpochSupersedesBlockOfSameEpoch(t *testing.T) {
	c, got := testClient(t, MergeAny, "a", "b")
	c.offerApply("a", 1, set(1, 1, true, block(wl, 10)))
	c.offerApply("b", 1, set(1, 1, true, block(wl, 10)))
	c.offerApply("a", 1, set(1, 2, true, release(wl, 10)))
	if d, _ := last(*got, wl); d.Block {
		t.Fatalf("lagging replica's block of the released epoch kept the workload blocked: %+v", d)
	}
	c.offerApply("b", 1, set(1, 2, true, block(wl, 11)))
	if d, _ := last(*got, wl); !d.Block || d.Epoch != 11 {
		t.Fatalf("newer trip did not supersede the release: %+v", d)
	}
}

// Crash-safe: a restarted replica that has not rebuilt its state (state_synced false) sends an empty set: no
// release. Once synced and still silent, the workload is released, with the default ramp (no ramp in the directive).
func TestUnsyncedReplicaNeverReleases(t *testing.T) {
	c, got := testClient(t, MergeAny, "a")
	c.offerApply("a", 1, set(1, 1, true, block(wl, 10)))
	n := len(*got)
	c.offerApply("a", 2, set(2, 1, false)) // restarted process, new incarnation, not synced
	for _, d := range (*got)[n:] {
		if !d.Block {
			t.Fatalf("released on the word of an unsynced replica: %+v", d)
		}
	}
	c.applyOnce(time.Now().Add(time.Hour), false) // the replica's set goes stale: still nobody synced
	for _, d := range (*got)[n:] {
		if !d.Block {
			t.Fatalf("released with no synced replica: %+v", d)
		}
	}
	c.offerApply("a", 2, set(2, 2, true))
	d, ok := last(*got, wl)
	if !ok || d.Block || d.RampDuration != 0 || d.Epoch != 10 {
		t.Fatalf("synced replica's silence: %+v", d)
	}
	// Two replicas, one unsynced: the synced one's explicit release is believed.
	c2, got2 := testClient(t, MergeAny, "a", "b")
	c2.offerApply("a", 1, set(1, 1, true, block(wl, 10)))
	c2.offerApply("b", 1, set(5, 1, false))
	c2.offerApply("a", 1, set(1, 2, true))
	if d, _ := last(*got2, wl); !d.Block {
		t.Fatalf("released by silence while a replica is unsynced: %+v", d)
	}
	c2.offerApply("a", 1, set(1, 3, true, release(wl, 10)))
	if d, _ := last(*got2, wl); d.Block {
		t.Fatalf("synced replica's release not applied: %+v", d)
	}
}

// Sets arriving concurrently from every replica's receive goroutine reach the handler from one goroutine at a time.
func TestHandlerRunsFromOneGoroutine(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addresses, cfg.Node = []string{"a", "b", "c"}, "n"
	var inFlight, overlaps, calls atomic.Int64
	c, err := New(cfg, func(Directive) {
		if inFlight.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(50 * time.Microsecond)
		calls.Add(1)
		inFlight.Add(-1)
	}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.applyLoop(ctx); close(done) }()
	var wg sync.WaitGroup
	for _, a := range cfg.Addresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.setConnected(a, true)
			for v := uint64(1); v <= 300; v++ {
				c.offer(a, 1, set(1, v, true, block(wl, 10+v%3), block("DaemonSet/x/"+a, 1)))
			}
		}()
	}
	wg.Wait()
	time.Sleep(50 * time.Millisecond)
	cancel()
	<-done
	if overlaps.Load() != 0 || calls.Load() == 0 {
		t.Fatalf("handler calls %d, overlapping %d", calls.Load(), overlaps.Load())
	}
}
