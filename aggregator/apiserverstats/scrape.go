package apiserverstats

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
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
	// URLs of each replica's /metrics (a URL without a path gets /metrics). May be empty: SetURLs gives (and changes)
	// the set later, e.g. from Discovery.
	URLs []string
	// MaxReplicas bounds the URL set (default 64).
	MaxReplicas int
	// Transport, when set, carries every scrape and authenticates it (e.g. client-go's rest.TransportFor, with the
	// kubeconfig's or the in-cluster service account's credentials); TokenFile, CAFile and InsecureSkipVerify are
	// then unused.
	Transport http.RoundTripper
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
		// Not bounded by the interval: the slow answer of a saturated API server is the reading that matters most
		// (scrapes of one replica never overlap; the next waits for this one).
		c.Timeout = 10 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = max(time.Minute, c.Interval)
	}
	if c.Limits == (Limits{}) {
		c.Limits = DefaultLimits()
	}
	if c.MaxReplicas <= 0 {
		c.MaxReplicas = 64
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

	mu      sync.Mutex
	targets []target // the current set, in the order of the URLs
	status  map[string]*ReplicaStatus
	changed chan struct{} // signals Run that targets changed
}

// target is one replica: its name (the URL's host:port) and its /metrics URL.
type target struct{ replica, url string }

// acceptHeader asks for the delimited protobuf format (streamed family by family), text otherwise.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`

// NewScraper validates cfg and builds the HTTP client.
func NewScraper(cfg ScrapeConfig, logger *slog.Logger) (*Scraper, error) {
	cfg.Defaults()
	s := &Scraper{cfg: cfg, logger: logger.With("component", "apiserverstats"), token: tokenSource{path: cfg.TokenFile},
		now: time.Now, status: map[string]*ReplicaStatus{}, changed: make(chan struct{}, 1)}
	if err := s.SetURLs(cfg.URLs); err != nil {
		return nil, err
	}
	s.cfg.URLs = nil // the set lives in s.targets
	if cfg.Transport != nil {
		s.cfg.TokenFile = "" // the transport authenticates
		s.client = &http.Client{Transport: cfg.Transport}
		return s, nil
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
	return s, nil
}

// parseTargets validates a URL set: http(s) URLs, a path defaulting to /metrics, each host:port once, at most max.
func parseTargets(urls []string, maxN int) ([]target, error) {
	if len(urls) > maxN {
		return nil, fmt.Errorf("%d API server URLs, at most %d", len(urls), maxN)
	}
	out := make([]target, 0, len(urls))
	seen := map[string]bool{}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("API server URL %q: want http(s)://host[:port][/metrics]", raw)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = "/metrics"
		}
		if seen[u.Host] {
			return nil, fmt.Errorf("API server URL %q given twice", raw)
		}
		seen[u.Host] = true
		out = append(out, target{replica: u.Host, url: u.String()})
	}
	return out, nil
}

// SetURLs replaces the set of replicas scraped (safe while Run runs). Replicas kept in the set keep scraping
// undisturbed (their previous page, hence their rates, and their status); a new one starts within one interval; a
// removed one stops and its status disappears. An invalid set is refused whole and the current one stays.
func (s *Scraper) SetURLs(urls []string) error {
	ts, err := parseTargets(urls, s.cfg.MaxReplicas)
	if err != nil {
		return err
	}
	s.mu.Lock()
	status := make(map[string]*ReplicaStatus, len(ts))
	for _, t := range ts {
		st := s.status[t.replica]
		if st == nil {
			st = &ReplicaStatus{Replica: t.replica}
		}
		status[t.replica] = st
	}
	s.targets, s.status = ts, status
	s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return nil
}

// URLs returns the current set.
func (s *Scraper) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.targets))
	for i, t := range s.targets {
		out[i] = t.url
	}
	return out
}

// Status returns every replica's scrape state, in the order of the URLs.
func (s *Scraper) Status() []ReplicaStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ReplicaStatus, 0, len(s.targets))
	for _, t := range s.targets {
		out = append(out, *s.status[t.replica])
	}
	return out
}

// Run scrapes every replica of the current set until ctx ends, calling sink (from one goroutine per replica) with
// each reading. It follows SetURLs: one goroutine per replica, started and stopped as the set changes.
func (s *Scraper) Run(ctx context.Context, sink func(Reading)) {
	type running struct {
		url  string
		stop context.CancelFunc
	}
	loops := map[string]running{}
	var wg sync.WaitGroup
	defer func() {
		for _, r := range loops {
			r.stop()
		}
		wg.Wait()
	}()
	for {
		s.mu.Lock()
		want := make(map[string]target, len(s.targets))
		for _, t := range s.targets {
			want[t.replica] = t
		}
		s.mu.Unlock()
		for replica, r := range loops {
			if t, ok := want[replica]; !ok || t.url != r.url {
				r.stop()
				delete(loops, replica)
			}
		}
		for replica, t := range want {
			if _, ok := loops[replica]; ok {
				continue
			}
			lctx, stop := context.WithCancel(ctx)
			loops[replica] = running{url: t.url, stop: stop}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.loop(lctx, replica, t.url, sink)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-s.changed:
		}
	}
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
	if st == nil {
		return // removed from the set while this scrape ran
	}
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
