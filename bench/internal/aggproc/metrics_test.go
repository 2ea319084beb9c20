package aggproc

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestScrapeAndByLabel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`# HELP fanout_aggregator_reports_rejected_total Node reports rejected, by reason.
# TYPE fanout_aggregator_reports_rejected_total counter
fanout_aggregator_reports_rejected_total{reason="invalid"} 12
fanout_aggregator_reports_rejected_total{reason="late"} 0
fanout_aggregator_reports_total 3.5e+06
`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := Scrape(ctx, strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	if m["fanout_aggregator_reports_total"] != 3.5e6 {
		t.Errorf("reports_total %v", m["fanout_aggregator_reports_total"])
	}
	by := m.ByLabel("fanout_aggregator_reports_rejected_total")
	if len(by) != 2 || by["invalid"] != 12 || by["late"] != 0 {
		t.Errorf("by reason %v", by)
	}
	if got := Pct([]time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, 0.99); got != 3*time.Second {
		t.Errorf("p99 %s", got)
	}
}
