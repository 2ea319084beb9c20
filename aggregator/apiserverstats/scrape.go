package apiserverstats

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// ScrapeConfig configures scraping kube-apiserver replicas directly.
type ScrapeConfig struct {
	// URLs of each replica's /metrics (a URL without a path gets /metrics).
	URLs []string
	// TokenFile holds the bearer token; it is re-read when it changes (projected tokens rotate).
	TokenFile string
	// CAFile verifies the API server's certificate; InsecureSkipVerify turns verification off (tests only).
	CAFile             string
	InsecureSkipVerify bool
	// Interval between scrapes of one replica (jittered by +-10%); Timeout bounds one scrape.
	Interval, Timeout time.Duration
	// MaxBackoff caps the exponential backoff after failures.
	MaxBackoff time.Duration
	Limits     Limits
}

// Defaults fills unset fields.
func (c *ScrapeConfig) Defaults() {
	if c.Interval <= 0 {
		c.Interval = 5 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = min(c.Interval, 10*time.Second)
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = max(time.Minute, c.Interval)
	}
	if c.Limits == (Limits{}) {
		c.Limits = DefaultLimits()
	}
}

// ReplicaStatus is the scrape state of one replica (for metrics).
type ReplicaStatus struct {
	Replica string
	// Success is whether the last scrape succeeded; Duration how long it took.
	Success  bool
	Duration time.Duration
	// Scrapes and Failures count attempts and failed attempts; ConsecutiveFailures resets on success.
	Scrapes, Failures, ConsecutiveFailures uint64
	LastSuccess                            time.Time
	LastError                              string
	BodyBytes                              int64
}

// Scraper reads each replica's /metrics every Interval and hands each reading to a sink.
type Scraper struct {
	cfg    ScrapeConfig
	client *http.Client
	logger *slog.Logger
	token  tokenSource
	now    func() time.Time

	mu     sync.Mutex
	status map[string]*ReplicaStatus
	order  []string
}

// acceptHeader asks for the delimited protobuf format (streamed family by family), text otherwise.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

// NewScraper validates cfg and builds the HTTP client.
func NewScraper(cfg ScrapeConfig, logger *slog.Logger) (*Scraper, error) {
	cfg.Defaults()
	cfg.URLs = append([]string(nil), cfg.URLs...)
	if len(cfg.URLs) == 0 {
		return nil, errors.New("no API server URLs")
	}
	if len(cfg.URLs) > 64 {
		return nil, fmt.Errorf("%d API server URLs, at most 64", len(cfg.URLs))
	}
	s := &Scraper{cfg: cfg, logger: logger.With("component", "apiserverstats"), token: tokenSource{path: cfg.TokenFile},
		now: time.Now, status: map[string]*ReplicaStatus{}}
	seen := map[string]bool{}
	for i, raw := range cfg.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("API server URL %q: want http(s)://host[:port][/metrics]", raw)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/metrics"
		}
		cfg.URLs[i] = u.String()
		if seen[u.Host] {
			return nil, fmt.Errorf("API server URL %q given twice", raw)
		}
		seen[u.Host] = true
		s.status[u.Host] = &ReplicaStatus{Replica: u.Host}
		s.order = append(s.order, u.Host)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in, tests only
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read API server CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("API server CA %s: no certificates", cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if cfg.TokenFile != "" {
		if _, err := s.token.get(); err != nil {
			return nil, err
		}
	}
	s.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig: tc, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 1, IdleConnTimeout: 3 * cfg.Interval,
		TLSHandshakeTimeout: cfg.Timeout, ResponseHeaderTimeout: cfg.Timeout, DisableCompression: false,
	}}
	s.cfg = cfg
	return s, nil
}

// Status returns every replica's scrape state, in the order of the URLs.
func (s *Scraper) Status() []ReplicaStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReplicaStatus, 0, len(s.order))
	for _, r := range s.order {
		out = append(out, *s.status[r])
	}
	return out
}

// Run scrapes every replica until ctx ends, calling sink (from one goroutine per replica) with each reading.
func (s *Scraper) Run(ctx context.Context, sink func(Reading)) {
	var wg sync.WaitGroup
	for i, u := range s.cfg.URLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.loop(ctx, s.order[i], u, sink)
		}()
	}
	wg.Wait()
}

func (s *Scraper) loop(ctx context.Context, replica, u string, sink func(Reading)) {
	log := s.logger.With("replica", replica)
	// Replicas start spread over one interval.
	wait := time.Duration(rand.Int64N(int64(s.cfg.Interval)))
	var prev *Page
	var prevAt time.Time
	failures := 0
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		start := s.now()
		page, n, err := s.scrape(ctx, u)
		took := s.now().Sub(start)
		if ctx.Err() != nil {
			return
		}
		s.record(replica, err, took, n, start)
		if err != nil {
			failures++
			wait = Backoff(s.cfg.Interval, s.cfg.MaxBackoff, failures)
			if failures == 1 || failures%10 == 0 {
				log.Warn("scrape failed; backing off", "err", err, "failures", failures, "next_in", wait.Round(time.Millisecond))
			}
			continue
		}
		if failures > 0 {
			log.Info("scrape recovered", "after_failures", failures)
		}
		failures = 0
		// The reading is stamped at the scrape's end: gauges are read then.
		at := start.Add(took)
		sink(NewReading(replica, at, page, prevAt, prev))
		prev, prevAt = page, at
		wait = jitter(s.cfg.Interval)
	}
}

// Backoff is the wait after the n-th consecutive failure: interval doubled per failure up to maxWait, jittered.
func Backoff(interval, maxWait time.Duration, n int) time.Duration {
	d := interval
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return jitter(min(d, maxWait))
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}

func (s *Scraper) record(replica string, err error, took time.Duration, n int64, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status[replica]
	st.Scrapes++
	st.Duration = took
	st.Success = err == nil
	st.BodyBytes = n
	if err != nil {
		st.Failures++
		st.ConsecutiveFailures++
		st.LastError = err.Error()
		return
	}
	st.ConsecutiveFailures = 0
	st.LastSuccess = at
	st.LastError = ""
}

// scrape reads one page.
func (s *Scraper) scrape(ctx context.Context, u string) (*Page, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", acceptHeader)
	if s.cfg.TokenFile != "" {
		tok, err := s.token.get()
		if err != nil {
			return nil, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, 0, fmt.Errorf("get %s: status %s", u, resp.Status)
	}
	cr := &countingReader{r: resp.Body}
	page, err := ParsePage(cr, resp.Header.Get("Content-Type"), s.cfg.Limits)
	if err != nil {
		return nil, cr.n, fmt.Errorf("read %s: %w", u, err)
	}
	return page, cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tokenSource re-reads the token file when its modification time changes.
type tokenSource struct {
	path  string
	mu    sync.Mutex
	mtime time.Time
	size  int64
	tok   string
}

const maxTokenBytes = 64 << 10

func (t *tokenSource) get() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		return "", fmt.Errorf("stat token file: %w", err)
	}
	if t.tok != "" && fi.ModTime().Equal(t.mtime) && fi.Size() == t.size {
		return t.tok, nil
	}
	if fi.Size() > maxTokenBytes {
		return "", fmt.Errorf("token file %s: %d bytes, at most %d", t.path, fi.Size(), maxTokenBytes)
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", t.path)
	}
	t.tok, t.mtime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}
