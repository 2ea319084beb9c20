package apiserverstats

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A Prometheus HTTP API answering the source's queries: each instant query gets the vector its expression asks for.
func TestPromSource(t *testing.T) {
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		q := r.Form.Get("query")
		queries = append(queries, q)
		var res []string
		add := func(labels string, v float64) {
			res = append(res, fmt.Sprintf(`{"metric":{%s},"value":[1700000000,"%g"]}`, labels, v))
		}
		inst := `"instance":"10.0.0.1:6443"`
		switch {
		case strings.Contains(q, MetricExecutingSeats):
			add(inst+`,"priority_level":"workload-low"`, 30)
			add(inst+`,"priority_level":"global-default"`, 10)
			add(inst+`,"priority_level":"`+strings.Repeat("x", 300)+`"`, 1000) // hostile: skipped
		case strings.Contains(q, MetricNominalSeats):
			add(inst+`,"priority_level":"workload-low"`, 100)
			add(inst+`,"priority_level":"global-default"`, 50)
		case strings.Contains(q, MetricRequestDuration+"_bucket"):
			add(inst+`,"le":"0.1"`, 80)
			add(inst+`,"le":"1"`, 95)
			add(inst+`,"le":"+Inf"`, 100)
		case strings.Contains(q, MetricRequestDuration+"_count"):
			add(inst, 100)
		case strings.Contains(q, MetricRequestDuration+"_sum"):
			add(inst, 12)
		case strings.Contains(q, MetricRejected) && !strings.Contains(q, "increase"):
			add(inst, 7)
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[%s]}}`, strings.Join(res, ","))
	}))
	defer srv.Close()
	p, err := NewPromSource(PrometheusConfig{URL: srv.URL}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := p.Read(context.Background(), time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d readings", len(rs))
	}
	r := rs[0]
	if r.Replica != "10.0.0.1:6443" || r.ExecutingSeats != 40 || r.NominalSeats != 150 || r.RejectedTotal != 7 || !r.Deltas || r.Skipped != 1 {
		t.Fatalf("reading: %+v", r)
	}
	if r.Latency.Count != 100 || math.Abs(r.Latency.Mean()-0.12) > 1e-9 || math.Abs(r.Latency.FractionAbove(0.1)-0.2) > 1e-9 {
		t.Fatalf("latency: %+v", r.Latency)
	}
	for _, q := range queries {
		if !strings.Contains(q, `job="apiserver"`) {
			t.Errorf("query without the selector: %s", q)
		}
		if strings.Contains(q, "priority_level") && !strings.Contains(q, `priority_level!="exempt"`) {
			t.Errorf("query includes the exempt level: %s", q)
		}
	}
	if s := r.Sample(); s.Validate() != nil {
		t.Fatal(s.Validate())
	}
	// A body over the limit is refused.
	lim := DefaultLimits()
	lim.MaxBodyBytes = 64
	if p, err = NewPromSource(PrometheusConfig{URL: srv.URL, Limits: lim}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(context.Background(), time.Unix(1_700_000_000, 0)); err == nil {
		t.Fatal("oversized response accepted")
	}
}
