package report

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
)

// Handler receives merged directives, from one goroutine and in order; it must not block for long.
type Handler func(Directive)

// Client streams reports to every replica. Submit never blocks.
type Client struct {
	cfg     Config
	logger  *slog.Logger
	handler Handler
	token   string
	tls     *tls.Config

	mu       sync.Mutex
	seq      uint64
	replicas []*replica
	sets     map[string]*replicaSet
	merger   merger
	applyNow chan struct{} // wakes the one goroutine that merges and hands directives over

	sent      prometheus.Counter
	errs      prometheus.Counter
	dropped   *prometheus.CounterVec
	connected *prometheus.GaugeVec
	dropTotal uint64
}

type replica struct {
	addr string
	mu   sync.Mutex
	buf  []*api.NodeReport // ring: oldest first
	wake chan struct{}
}

// New returns a client; handler receives merged directives (may be nil).
func New(cfg Config, handler Handler, reg prometheus.Registerer, logger *slog.Logger) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("report client config: %w", err)
	}
	tok, err := readToken(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg: cfg, logger: logger.With("component", "report"), handler: handler, token: tok,
		sets: map[string]*replicaSet{}, applyNow: make(chan struct{}, 1),
		merger: merger{mode: cfg.Merge, replicas: len(cfg.Addresses), blocked: map[string]Directive{}},
		sent:   prometheus.NewCounter(prometheus.CounterOpts{Name: "fanout_agent_reports_sent_total", Help: "Reports sent to aggregator replicas."}),
		errs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "fanout_agent_report_errors_total", Help: "Report stream errors (connect, send, receive)."}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fanout_agent_reports_dropped_total",
			Help: "Reports dropped because a replica's buffer was full (oldest first)."}, []string{"address"}),
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fanout_agent_aggregator_connected",
			Help: "1 while the report stream to an aggregator replica is up."}, []string{"address"}),
	}
	if cfg.CAFile != "" {
		if c.tls, err = clientTLS(cfg); err != nil {
			return nil, err
		}
	}
	if c.tls == nil && tok != "" {
		c.logger.Warn("--insecure: sending the bearer token over plaintext gRPC; anyone on the path can read and replay it")
	}
	for _, m := range []prometheus.Collector{c.sent, c.errs, c.dropped, c.connected} {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("register report metrics: %w", err)
		}
	}
	for _, a := range cfg.Addresses {
		c.replicas = append(c.replicas, &replica{addr: a, wake: make(chan struct{}, 1)})
		c.sets[a] = &replicaSet{}
		c.connected.WithLabelValues(a).Set(0)
		c.dropped.WithLabelValues(a)
	}
	return c, nil
}

func clientTLS(cfg Config) (*tls.Config, error) {
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read aggregator CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("aggregator CA %s: no certificates", cfg.CAFile)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Submit queues a report for every replica. It fills node, sequence and (if unset) timestamp and the dropped count.
// It never blocks: a full buffer drops its oldest report.
func (c *Client) Submit(r *api.NodeReport) {
	c.mu.Lock()
	c.seq++
	r.Node, r.Sequence = c.cfg.Node, c.seq
	if r.Timestamp == nil {
		r.Timestamp = timestamppb.Now()
	}
	if r.Health == nil {
		r.Health = &api.AgentHealth{}
	}
	r.Health.ReportsDroppedTotal = c.dropTotal
	c.mu.Unlock()
	for _, rp := range c.replicas {
		rp.mu.Lock()
		if len(rp.buf) >= c.cfg.Buffer {
			rp.buf = rp.buf[1:]
			c.dropped.WithLabelValues(rp.addr).Inc()
			c.mu.Lock()
			c.dropTotal++
			c.mu.Unlock()
		}
		rp.buf = append(rp.buf, r)
		rp.mu.Unlock()
		select {
		case rp.wake <- struct{}{}:
		default:
		}
	}
}

// Run keeps a report stream open to every replica until ctx ends, and hands merged directives to the handler from
// one goroutine, in the order the sets were accepted.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.applyLoop(ctx)
	}()
	for _, rp := range c.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.runReplica(ctx, rp)
		}()
	}
	wg.Wait()
	return nil
}

type tokenCreds struct {
	token  string
	secure bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if t.token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}

func (t tokenCreds) RequireTransportSecurity() bool { return t.secure }

func (c *Client) dial(addr string) (*grpc.ClientConn, error) {
	tc := insecure.NewCredentials()
	if c.tls != nil {
		tc = credentials.NewTLS(c.tls.Clone())
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(tc),
		grpc.WithPerRPCCredentials(tokenCreds{token: c.token, secure: c.tls != nil}))
	if err != nil {
		return nil, fmt.Errorf("dial aggregator %s: %w", addr, err)
	}
	return conn, nil
}

func (c *Client) runReplica(ctx context.Context, rp *replica) {
	conn, err := c.dial(rp.addr)
	if err != nil {
		c.logger.Error("aggregator address unusable", "address", rp.addr, "err", err)
		return
	}
	defer conn.Close()
	backoff := c.cfg.BackoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := c.stream(ctx, conn, rp)
		c.setConnected(rp.addr, false)
		if ctx.Err() != nil {
			return
		}
		c.errs.Inc()
		if time.Since(start) > 2*c.cfg.BackoffMax {
			backoff = c.cfg.BackoffMin
		}
		// Full jitter: sleep uniformly in [backoff/2, backoff].
		d := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		c.logger.Warn("aggregator stream lost, reconnecting", "address", rp.addr, "err", err, "in", d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(backoff*2, c.cfg.BackoffMax)
	}
}

func (c *Client) stream(ctx context.Context, conn *grpc.ClientConn, rp *replica) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := api.NewAggregatorClient(conn).Report(ctx)
	if err != nil {
		return fmt.Errorf("open report stream: %w", err)
	}
	c.mu.Lock()
	c.sets[rp.addr].stream++
	stream := c.sets[rp.addr].stream
	c.mu.Unlock()
	recvErr := make(chan error, 1)
	go func() {
		for {
			set, err := st.Recv()
			if err != nil {
				recvErr <- fmt.Errorf("receive directives: %w", err)
				return
			}
			c.setConnected(rp.addr, true)
			c.offer(rp.addr, stream, set)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-recvErr:
			return err
		case <-rp.wake:
		}
		for {
			rp.mu.Lock()
			if len(rp.buf) == 0 {
				rp.mu.Unlock()
				break
			}
			r := rp.buf[0]
			rp.mu.Unlock()
			if err := st.Send(r); err != nil {
				return fmt.Errorf("send report: %w", err)
			}
			rp.mu.Lock()
			if len(rp.buf) > 0 && rp.buf[0] == r {
				rp.buf = rp.buf[1:]
			}
			rp.mu.Unlock()
			c.sent.Inc()
		}
	}
}

func (c *Client) setConnected(addr string, up bool) {
	c.mu.Lock()
	rs := c.sets[addr]
	changed := rs.connected != up
	rs.connected = up
	if !up && changed {
		rs.lostAt = time.Now()
	}
	c.mu.Unlock()
	v := 0.0
	if up {
		v = 1
	}
	c.connected.WithLabelValues(addr).Set(v)
}

// offer records a replica's set unless it is older than the one held (an older stream, or an older version of the
// same replica process), and wakes the apply loop.
func (c *Client) offer(addr string, stream uint64, set *api.DirectiveSet) bool {
	c.mu.Lock()
	rs := c.sets[addr]
	ok := rs.newer(stream, set)
	if ok {
		rs.set, rs.stream = set, stream
	}
	c.mu.Unlock()
	if !ok {
		c.logger.Debug("stale directive set dropped", "address", addr, "version", set.GetVersion(),
			"incarnation", set.GetIncarnation())
		return false
	}
	select {
	case c.applyNow <- struct{}{}:
	default:
	}
	return true
}

// applyLoop is the one goroutine that merges the replicas' latest sets and hands directives over, so directives
// reach the enforcer in order. It also re-merges every second, so a replica that went stale stops counting.
func (c *Client) applyLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.applyNow:
			c.applyOnce(time.Now(), true)
		case <-t.C:
			c.applyOnce(time.Now(), false)
		}
	}
}

// applyOnce merges and hands the directives over; without renew (a timer tick, no new set) only releases go out,
// so a silent replica's last set does not keep renewing block TTLs.
func (c *Client) applyOnce(now time.Time, renew bool) {
	c.mu.Lock()
	out := c.merger.merge(c.sets, now, c.cfg.StaleAfter)
	c.mu.Unlock()
	if c.handler == nil {
		return
	}
	for _, d := range out {
		if d.Block && !renew {
			continue
		}
		c.handler(d)
	}
}
