package server

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/headroom"
	"github.com/fanoutdev/fanout/api"
)

// headroomStatus is the wire form of the estimate the detector used.
func headroomStatus(e headroom.Estimate) *api.HeadroomStatus {
	h := &api.HeadroomStatus{
		Source: string(e.Source), CapacityRequestsPerS: e.CapacityRequestsPerS, CapacityRxBytesPerS: e.CapacityRxBytesPerS,
		Utilization: e.Utilization, UtilizationSource: e.UtilizationSource, UtilizationSeats: e.UtilizationSeats,
		UtilizationLatency: e.UtilizationLatency, UtilizationNodes: e.UtilizationNodes, Confidence: e.Confidence,
		Samples: uint32(max(e.Samples, 0)), ApiserverFresh: e.APIServerFresh, Summary: e.String(),
	}
	if !e.LastAPIServerSample.IsZero() {
		h.LastApiserverSample = timestamppb.New(e.LastAPIServerSample)
	}
	return h
}
