package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/bench/internal/aggproc"
)

// rssSample is one reading of the aggregator's memory.
type rssSample struct {
	at  time.Time
	rss int64
}

// scrapeResult is one /metrics scrape.
type scrapeResult struct {
	at    time.Time
	took  time.Duration
	err   error
	pairs float64 // fanout_aggregator_workload_node_pairs
}

// statusCheck is one admin Status call whose window the agent reported.
type statusCheck struct {
	at      time.Time
	second  int64
	ok      bool
	detail  string
	topRate float64 // highest workload request rate in the window
	topName string
	took    time.Duration
}

// watch samples the aggregator while the benchmark runs.
type watch struct {
	mu      sync.Mutex
	rss     []rssSample
	scrapes []scrapeResult
	checks  []statusCheck
	errs    []string
}

func (w *watch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 5 {
		w.errs = append(w.errs, err.Error())
	}
}

// every runs f every period until ctx ends (a slow f delays the next run, it does not pile up).
func every(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *watch) sampleRSS(agg *aggproc.Process) {
	s, err := agg.Sample()
	if err != nil {
		w.fail(err)
		return
	}
	w.mu.Lock()
	w.rss = append(w.rss, rssSample{at: s.At, rss: s.RSS})
	w.mu.Unlock()
}

// scrape reads /metrics with the client timeout a Prometheus server would use.
func (w *watch) scrape(ctx context.Context, addr string, timeout time.Duration) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	m, err := aggproc.Scrape(sctx, addr)
	r := scrapeResult{at: start, took: time.Since(start), err: err}
	if err == nil {
		r.pairs = m["fanout_aggregator_workload_node_pairs"]
	} else if ctx.Err() != nil {
		return // the benchmark is ending
	}
	w.mu.Lock()
	w.scrapes = append(w.scrapes, r)
	w.mu.Unlock()
}

// status asks the aggregator for its fleet view as an operator would, and checks the agent's workloads at their exact
// rate when the agent reported the window.
func (w *watch) status(ctx context.Context, c api.AggregatorClient, a *agent) {
	sctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+aggproc.AdminToken), 5*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := c.Status(sctx, &api.StatusRequest{}, grpc.MaxCallRecvMsgSize(256<<20))
	if err != nil {
		if ctx.Err() == nil {
			w.fail(fmt.Errorf("status: %w", err))
		}
		return
	}
	sec := resp.GetWindow().AsTime().Unix()
	if !a.reported(sec) {
		return
	}
	chk := statusCheck{at: start, second: sec, ok: true, took: time.Since(start)}
	rates := map[string]float64{}
	for _, ws := range resp.GetWorkloads() {
		rates[ws.GetWorkload()] = ws.GetRequestsPerS()
		if ws.GetRequestsPerS() > chk.topRate {
			chk.topRate, chk.topName = ws.GetRequestsPerS(), ws.GetWorkload()
		}
	}
	for i := range goodWorkloads {
		wl, want := goodWorkload(i)
		if got, ok := rates[wl]; !ok || got != float64(want) {
			chk.ok = false
			chk.detail = fmt.Sprintf("second %d: %s at %v req/s (listed %v), want %d", sec, wl, got, ok, want)
			break
		}
	}
	w.mu.Lock()
	w.checks = append(w.checks, chk)
	w.mu.Unlock()
}
