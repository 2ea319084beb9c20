package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/aggregator/fleet"
	"github.com/fanoutdev/fanout/aggregator/ingest"
	"github.com/fanoutdev/fanout/aggregator/killswitch"
	"github.com/fanoutdev/fanout/api"
)

// Rejection reasons (label reason of fanout_aggregator_reports_rejected_total).
const (
	ReasonUnauthenticated = "unauthenticated"
	ReasonUnknownAgent    = "unknown_agent"
	ReasonInvalid         = "invalid"
	ReasonLate            = "late"
	ReasonFuture          = "future"
	ReasonStaleSequence   = "stale_sequence"
	ReasonDuplicate       = "duplicate_second"
)

// Config configures the server.
type Config struct {
	Replica string
	// Grace is how long after a second ends its window stays open for late reports.
	Grace time.Duration
	// Refresh is how often the directive set is re-sent on every stream even without a change.
	Refresh time.Duration
	// AgentTokens authenticates agents (nil: only mTLS client certificates authenticate).
	AgentTokens *Tokens
	// AdminTokens authorizes Trip and Release (nil: manual actions are refused).
	AdminTokens *Tokens
	// AllowCertAuth accepts a verified client certificate naming exactly one node (its CN, or its only DNS name).
	AllowCertAuth bool
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Incarnation identifies this process in every directive set (0: the start time in nanoseconds).
	Incarnation uint64
}

// Server implements api.AggregatorServer.
type Server struct {
	api.UnimplementedAggregatorServer
	cfg      Config
	eng      *engine.Engine
	logger   *slog.Logger
	reports  prometheus.Counter
	rejected *prometheus.CounterVec

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when the directive set changes
	set     *api.DirectiveSet
	version uint64
	synced  bool
	streams int
	folded  prometheus.Counter
	// limiters bounds the new workload names per node, across the node's streams (a reconnect does not reset them).
	limiters *ingest.Limiters
}

// New returns a server over eng, registering its counters on reg.
func New(cfg Config, eng *engine.Engine, reg prometheus.Registerer, logger *slog.Logger) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Second
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 10 * time.Second
	}
	if cfg.Incarnation == 0 {
		cfg.Incarnation = uint64(cfg.Now().UnixNano())
	}
	s := &Server{
		cfg: cfg, eng: eng, logger: logger.With("component", "server"),
		reports: prometheus.NewCounter(prometheus.CounterOpts{Name: "fanout_aggregator_reports_total", Help: "Node reports accepted."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fanout_aggregator_reports_rejected_total",
			Help: "Node reports rejected, by reason."}, []string{"reason"}),
		folded: prometheus.NewCounter(prometheus.CounterOpts{Name: "fanout_aggregator_names_folded_total",
			Help: "Workload names over a node's limits (new names per report or per minute) counted as " + ingest.Unattributed + "."}),
		changed:  make(chan struct{}),
		limiters: ingest.NewLimiters(cfg.Now),
	}
	for _, r := range []string{ReasonUnauthenticated, ReasonUnknownAgent, ReasonInvalid, ReasonLate, ReasonFuture, ReasonStaleSequence, ReasonDuplicate} {
		s.rejected.WithLabelValues(r)
	}
	for _, c := range []prometheus.Collector{s.reports, s.rejected, s.folded} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register server metrics: %w", err)
		}
	}
	s.publish()
	return s, nil
}

// Run closes seconds as wall time passes until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	s.eng.Start(s.cfg.Now().Unix() - 1)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := s.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		now := s.cfg.Now()
		through := now.Add(-s.cfg.Grace).Unix() - 1
		// One refresh clock for every stream: re-send the set every Refresh even without a change.
		if ds := s.eng.CloseThrough(through); len(ds) > 0 || s.eng.DirectivesVersion() != s.currentVersion() || now.Sub(last) >= s.cfg.Refresh ||
			s.eng.Synced() != s.currentSynced() {
			s.publish()
			last = now
		}
	}
}

func (s *Server) currentSynced() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.synced
}

func (s *Server) currentVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// publish rebuilds the directive set and wakes every stream.
func (s *Server) publish() {
	synced := s.eng.Synced()
	v, ds := s.eng.Directives()
	// Agents never release on the word of an unsynced replica: until it has rebuilt its trip state it says so.
	set := &api.DirectiveSet{Replica: s.cfg.Replica, Version: v, Sent: timestamppb.New(s.cfg.Now()),
		StateSynced: synced, Incarnation: s.cfg.Incarnation}
	for _, d := range ds {
		set.Directives = append(set.Directives, ToProto(d))
	}
	s.mu.Lock()
	s.set, s.version, s.synced = set, v, synced
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// ToProto converts a directive.
func ToProto(d killswitch.Directive) *api.Directive {
	out := &api.Directive{Workload: d.Workload, Epoch: d.Epoch, Reason: d.Reason}
	if d.Block {
		out.Action = api.Directive_ACTION_BLOCK
		out.Ttl = durationpb.New(d.TTL)
		return out
	}
	out.Action = api.Directive_ACTION_RELEASE
	out.Issued = timestamppb.New(time.Unix(d.Issued, 0))
	out.Ramp = &api.Ramp{Duration: durationpb.New(d.RampDuration), Steps: uint32(d.RampSteps), Jitter: durationpb.New(d.RampJitter)}
	return out
}

func (s *Server) current() (*api.DirectiveSet, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set, s.changed
}

// Streams returns how many agent streams are open.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// Report receives an agent's reports and streams directive sets back.
func (s *Server) Report(stream api.Aggregator_ReportServer) error {
	ctx := stream.Context()
	id, err := s.authenticate(ctx)
	if err != nil {
		s.rejected.WithLabelValues(ReasonUnauthenticated).Inc()
		return status.Error(codes.Unauthenticated, "authenticate agent: "+err.Error())
	}
	s.mu.Lock()
	s.streams++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.streams--
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sendErr := make(chan error, 1)
	go func() { sendErr <- s.sendLoop(ctx, stream) }()
	lim := s.limiters.Open(id.node)
	defer s.limiters.Close(lim)
	for {
		rep, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			select {
			case e := <-sendErr:
				if e != nil {
					return e
				}
			default:
			}
			if status.Code(err) == codes.Canceled {
				return nil
			}
			return fmt.Errorf("receive report: %w", err)
		}
		if reason, err := s.ingest(id, rep, lim); err != nil {
			s.rejected.WithLabelValues(reason).Inc()
			if reason == ReasonUnknownAgent {
				return status.Error(codes.PermissionDenied, err.Error())
			}
			s.logger.Debug("report rejected", "node", rep.GetNode(), "reason", reason, "err", err)
			continue
		}
		s.reports.Inc()
	}
}

func (s *Server) ingest(id identity, rep *api.NodeReport, lim *ingest.Limiter) (string, error) {
	r, err := ingest.Convert(rep)
	if err != nil {
		return ReasonInvalid, fmt.Errorf("validate report: %w", err)
	}
	if id.node != r.Node {
		return ReasonUnknownAgent, fmt.Errorf("report for node %q on a stream authenticated as %q", r.Node, id.node)
	}
	if n := lim.Apply(r); n > 0 {
		s.folded.Add(float64(n))
	}
	if err := s.eng.Ingest(r); err != nil {
		switch {
		case errors.Is(err, fleet.ErrLate):
			return ReasonLate, err
		case errors.Is(err, fleet.ErrFuture):
			return ReasonFuture, err
		case errors.Is(err, fleet.ErrStaleSequence):
			return ReasonStaleSequence, err
		case errors.Is(err, fleet.ErrDuplicateSecond):
			return ReasonDuplicate, err
		}
		return ReasonInvalid, err
	}
	return "", nil
}

// sendLoop sends the current set, then every new one (publish runs on change and every Refresh).
func (s *Server) sendLoop(ctx context.Context, stream api.Aggregator_ReportServer) error {
	for {
		set, changed := s.current()
		if err := stream.Send(set); err != nil {
			return fmt.Errorf("send directives: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}
