package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/bench/internal/aggproc"
)

// goodNode is the well-behaved agent's node.
const goodNode = "bench-good"

// goodWorkload i runs two pods on the good node and makes 10*(i+1) requests a second.
func goodWorkload(i int) (name string, reqPerS uint64) {
	return fmt.Sprintf("Deployment/shop/web-%d", i), uint64(10 * (i + 1))
}

const goodWorkloads = 5

// agent is a well-behaved agent: one stream, one report a second for the second just ended, offset after it ends, with
// consecutive sequence numbers and a 1 s interval.
type agent struct {
	offset time.Duration

	mu   sync.Mutex
	sent map[int64]bool // seconds reported
	lags []time.Duration
	err  error
}

func (a *agent) run(ctx context.Context, c api.AggregatorClient) {
	st, err := c.Report(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+aggproc.NodeToken(goodNode)))
	if err != nil {
		a.fail(fmt.Errorf("open report stream: %w", err))
		return
	}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	defer func() { _ = st.CloseSend() }()
	for seq := uint64(1); ; seq++ {
		end := time.Now().Truncate(time.Second).Add(time.Second)
		at := end.Add(a.offset)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(at)):
		}
		lag := time.Since(at)
		r := &api.NodeReport{Node: goodNode, Sequence: seq, Timestamp: timestamppb.New(end), Interval: durationpb.New(time.Second),
			Health: &api.AgentHealth{ProbesAttached: true, Version: "bench"}}
		for i := range goodWorkloads {
			wl, req := goodWorkload(i)
			a6, a4 := req*6/10, req*4/10
			r.Workloads = append(r.Workloads, &api.WorkloadDelta{Workload: wl, Pods: 2, Delta: &api.Counters{Requests: req, RxBytes: req * 4000}})
			r.Pods = append(r.Pods,
				&api.PodDelta{Uid: fmt.Sprintf("good-%d-a", i), Namespace: "shop", Name: fmt.Sprintf("web-%d-a", i), Workload: wl,
					Delta: &api.Counters{Requests: a6, RxBytes: a6 * 4000}},
				&api.PodDelta{Uid: fmt.Sprintf("good-%d-b", i), Namespace: "shop", Name: fmt.Sprintf("web-%d-b", i), Workload: wl,
					Delta: &api.Counters{Requests: a4, RxBytes: a4 * 4000}})
		}
		if err := st.Send(r); err != nil {
			if ctx.Err() == nil {
				a.fail(fmt.Errorf("send report %d: %w", seq, err))
			}
			return
		}
		a.mu.Lock()
		a.sent[end.Unix()-1] = true
		a.lags = append(a.lags, lag)
		a.mu.Unlock()
	}
}

func (a *agent) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.err = err
}

func (a *agent) reported(sec int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent[sec]
}
