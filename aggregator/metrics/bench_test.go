package metrics

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BenchmarkScrape measures one /metrics scrape of the aggregator's collector as cmd/fanout-aggregator serves it
// (engine summary, collect, gather, text encoding through promhttp) with 3,000 and 20,000 workloads held, unbounded
// (top=0: every workload, as before the bound) and with the default bound; summary is the engine's Summary alone, the
// part of a scrape the bound does not change, and status the engine's ordered Status (the admin API's, which scrapes
// read before Summary). Interleave the variants with -count=1 in a loop when comparing on a busy
// machine (BENCHMARKS.md, "Cardinality attack").
func BenchmarkScrape(b *testing.B) {
	for _, n := range []int{3_000, 20_000} {
		eng := heldEngine(b, n)
		b.Run(fmt.Sprintf("names=%d/status", n), func(b *testing.B) {
			for b.Loop() {
				_ = eng.Status()
			}
		})
		b.Run(fmt.Sprintf("names=%d/summary", n), func(b *testing.B) {
			for b.Loop() {
				_ = eng.Summary()
			}
		})
		for _, top := range []int{0, DefaultTopWorkloads} {
			b.Run(fmt.Sprintf("names=%d/top=%d", n, top), func(b *testing.B) {
				reg := prometheus.NewRegistry()
				reg.MustRegister(New(eng, Config{TopWorkloads: top}))
				h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				var body int
				for b.Loop() {
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d", rec.Code)
					}
					body = rec.Body.Len()
				}
				b.ReportMetric(float64(body), "body-bytes")
			})
		}
	}
}
