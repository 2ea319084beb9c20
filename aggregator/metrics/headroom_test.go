package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fanoutdev/fanout/aggregator/apiserverstats"
	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/aggregator/placement"
)

func TestHeadroomCollector(t *testing.T) {
	c := NewHeadroom(HeadroomSources{
		Estimate: func() headroom.Estimate {
			return headroom.Estimate{Source: headroom.SourceLearned, CapacityRequestsPerS: 400, CapacityRxBytesPerS: 1.2e8,
				Utilization: 0.5, UtilizationSeats: 0.5, UtilizationLatency: -1, UtilizationNodes: -1, Confidence: 0.8, Samples: 30, APIServerFresh: true}
		},
		Scrapes: func() []apiserverstats.ReplicaStatus {
			return []apiserverstats.ReplicaStatus{{Replica: "10.0.0.1:6443", Success: true, Duration: 20 * time.Millisecond, Failures: 2}}
		},
		Placement: func() placement.Stats { return placement.Stats{Workloads: 12, HPAs: 1, Synced: true} },
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP fanout_headroom_capacity Estimated API server capacity in the load units fanout measures (unit: requests_per_second or rx_bytes_per_second; 0 = unknown).
# TYPE fanout_headroom_capacity gauge
fanout_headroom_capacity{source="learned",unit="requests_per_second"} 400
fanout_headroom_capacity{source="learned",unit="rx_bytes_per_second"} 1.2e+08
# HELP fanout_headroom_scrape_success 1 when the last read of the replica's flow-control metrics succeeded.
# TYPE fanout_headroom_scrape_success gauge
fanout_headroom_scrape_success{replica="10.0.0.1:6443"} 1
# HELP fanout_placement_objects Workloads and HPAs the placement watcher tracks.
# TYPE fanout_placement_objects gauge
fanout_placement_objects{kind="hpa"} 1
fanout_placement_objects{kind="workload"} 12
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "fanout_headroom_capacity", "fanout_headroom_scrape_success", "fanout_placement_objects"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c); n != 10+4+4 {
		t.Fatalf("%d series", n)
	}
}
