package server

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/ingest"
	"github.com/fanoutdev/fanout/api"
)

// Status returns the fleet view. It needs an agent or admin credential.
func (s *Server) Status(ctx context.Context, _ *api.StatusRequest) (*api.StatusResponse, error) {
	if _, ok := s.cfg.AdminTokens.lookup(bearer(ctx)); !ok {
		if _, err := s.authenticate(ctx); err != nil {
			return nil, status.Error(codes.Unauthenticated, "status needs an admin or agent token")
		}
	}
	st := s.eng.Status()
	out := &api.StatusResponse{Replica: s.cfg.Replica, NodesReporting: uint32(st.NodesReporting), ApiserverUtilization: st.Utilization,
		DryRun: st.DryRun, Window: timestamppb.New(time.Unix(st.Second, 0)), StateSynced: s.eng.Synced(), Incarnation: s.cfg.Incarnation,
		Headroom: headroomStatus(s.eng.Headroom())}
	cover := s.eng.CoverageOf()
	for _, w := range st.Workloads {
		ws := &api.WorkloadStatus{
			Workload: w.Workload, State: w.State.String(), RequestsPerS: w.Now.Requests, RxBytesPerS: w.Now.RxBytes,
			ConnectsPerS: w.Now.Connects, Pods: w.Pods, Nodes: w.Nodes, SynchronizedNodes: uint32(w.SyncNodes),
			ProjectedLoadRatio: w.ProjectedRatio, BaselineRequestsPerS: w.BaselineRequests, Protected: w.Protected,
			Reason: w.Reason, Epoch: w.Epoch, CostRatio: w.CostRatio, Held: w.Held,
		}
		if c, ok := cover[w.Workload]; ok {
			ws.NodesRunning, ws.NodesEnforcing, ws.Laggards, ws.Coverage = uint32(c.Running), uint32(c.Enforcing), c.Laggards, c.Ratio()
			for _, r := range c.Refusals {
				ws.Refusals = append(ws.Refusals, &api.NodeRefusal{Node: r.Node, Reason: r.Reason})
			}
		}
		out.Workloads = append(out.Workloads, ws)
	}
	set, _ := s.current()
	out.Directives = set.GetDirectives()
	return out, nil
}

func (s *Server) admin(ctx context.Context, req *api.ManualRequest) error {
	if _, ok := s.cfg.AdminTokens.lookup(bearer(ctx)); !ok {
		return status.Error(codes.PermissionDenied, "manual trip/release needs an admin token")
	}
	if !ingest.ValidWorkload(req.GetWorkload()) {
		return status.Errorf(codes.InvalidArgument, "workload: want Kind/namespace/name, got %q", req.GetWorkload())
	}
	if strings.TrimSpace(req.GetReason()) == "" {
		return status.Error(codes.InvalidArgument, "reason: required for the audit log")
	}
	return nil
}

// Trip blocks a workload by hand.
func (s *Server) Trip(ctx context.Context, req *api.ManualRequest) (*api.ManualResponse, error) {
	return s.manual(ctx, true, req)
}

// Release releases a tripped workload by hand.
func (s *Server) Release(ctx context.Context, req *api.ManualRequest) (*api.ManualResponse, error) {
	return s.manual(ctx, false, req)
}

func (s *Server) manual(ctx context.Context, trip bool, req *api.ManualRequest) (*api.ManualResponse, error) {
	if err := s.admin(ctx, req); err != nil {
		return nil, err
	}
	var ttl time.Duration
	if req.GetTtl() != nil {
		ttl = req.GetTtl().AsDuration()
	}
	d, err := s.eng.Manual(s.cfg.Now().Unix(), trip, req.GetWorkload(), req.GetReason(), ttl)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.publish()
	return &api.ManualResponse{State: d.To, Epoch: d.Epoch}, nil
}
