package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fanoutdev/fanout/api"
)

func TestStatusShowsHeadroom(t *testing.T) {
	var out bytes.Buffer
	printStatus(&out, &api.StatusResponse{Replica: "a", Headroom: &api.HeadroomStatus{Source: "learned", ApiserverFresh: true,
		Summary: "capacity 420 req/s / 110.0 MB/s (learned, confidence 0.80, 40 samples), utilization 60% (seats)"}}, 10)
	if !strings.Contains(out.String(), "headroom: capacity 420 req/s / 110.0 MB/s (learned, confidence 0.80, 40 samples), utilization 60% (seats); API server metrics fresh") {
		t.Fatalf("status:\n%s", out.String())
	}
}
