package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
)

// podLoadFlag marks a pod process: the bench re-executes itself as each pod's process, born in the container cgroup
// by e2e/fleet (clone3 CLONE_INTO_CGROUP), so every call it makes is attributed to that pod.
const podLoadFlag = "-pod-load"

// Signals the bench sends a pod process to switch its load off (idle windows) and on again.
const (
	pauseSignal  = syscall.SIGUSR1
	resumeSignal = syscall.SIGUSR2
)

type podConfig struct {
	url     string
	caFile  string
	rate    float64
	newConn time.Duration
	workers int
	life    time.Duration
}

// podMain is a pod's process: GETs to the stub API server at a fixed rate over one keep-alive HTTP/2 connection,
// plus one call on a fresh connection every --new-conn; one fleet.Sample JSON line per second on stdout.
func podMain(args []string) error {
	var c podConfig
	fs := flag.NewFlagSet("pod-load", flag.ContinueOnError)
	fs.Bool("pod-load", true, "run as a pod's process")
	fs.String("kubeconfig", "", "passed by e2e/fleet's spawner; unused (the pod calls the stub API server)")
	fs.StringVar(&c.url, "url", "", "URL to GET")
	fs.StringVar(&c.caFile, "ca-file", "", "CA of the stub API server")
	fs.Float64Var(&c.rate, "rate", 100, "calls per second")
	fs.DurationVar(&c.newConn, "new-conn", 0, "make one of the calls on a new connection this often (0: never)")
	fs.IntVar(&c.workers, "workers", 8, "concurrent callers")
	fs.DurationVar(&c.life, "life", 5*time.Minute, "exit after this long (a safety bound)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.url == "" || c.caFile == "" || c.rate <= 0 || c.workers < 1 {
		return errors.New("-url, -ca-file, -rate > 0 and -workers >= 1 are required")
	}
	ca, err := os.ReadFile(c.caFile)
	if err != nil {
		return fmt.Errorf("read ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("no certificate in %s", c.caFile)
	}
	newTransport := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
			MaxIdleConnsPerHost: c.workers, IdleConnTimeout: 10 * time.Minute}
	}
	keepAlive := &http.Client{Transport: newTransport(), Timeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.life)
	defer cancel()
	var paused atomic.Bool
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, pauseSignal, resumeSignal)
	go func() {
		for s := range sigs {
			paused.Store(s == pauseSignal)
		}
	}()

	var ok, failed, bytes atomic.Int64
	var lastErr atomic.Value
	call := func(hc *http.Client) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
		req.Header.Set("Authorization", "Bearer bench-pod-token")
		req.Header.Set("Accept", "application/json")
		resp, err := hc.Do(req)
		if err == nil {
			var n int64
			n, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			bytes.Add(n)
			if err == nil && (resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2) {
				err = fmt.Errorf("status %d over %s", resp.StatusCode, resp.Proto)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				failed.Add(1)
				lastErr.Store(err.Error())
			}
			return
		}
		ok.Add(1)
	}

	// Tokens at the rate, credited by elapsed time (a late tick loses nothing); a burst of at most 250 ms is kept when
	// callers fall behind, the rest is not made up: the offered rate is what the pods report having done.
	tokens := make(chan struct{}, max(1, int(c.rate/4)))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		credit, last := rand.Float64(), time.Now() // desynchronize pods
		for {
			var now time.Time
			select {
			case <-ctx.Done():
				close(tokens)
				return
			case now = <-t.C:
			}
			elapsed := now.Sub(last)
			last = now
			if paused.Load() {
				credit = 0
				continue
			}
			for credit += c.rate * elapsed.Seconds(); credit >= 1; credit-- {
				select {
				case tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	for range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				call(keepAlive)
			}
		}()
	}
	if c.newConn > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := time.Duration(rand.Int64N(int64(c.newConn))) // spread the pods' new connections
			t := time.NewTimer(first)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				t.Reset(c.newConn)
				if paused.Load() {
					continue
				}
				select {
				case _, open := <-tokens: // one of the rate's calls, made on a new connection
					if !open {
						return
					}
				case <-ctx.Done():
					return
				}
				tr := newTransport()
				call(&http.Client{Transport: tr, Timeout: 10 * time.Second})
				tr.CloseIdleConnections()
			}
		}()
	}

	enc := json.NewEncoder(os.Stdout)
	parent := os.Getppid()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case now := <-t.C:
			s := fleet.Sample{T: float64(now.UnixNano()) / 1e9, OK: ok.Swap(0), Err: failed.Swap(0), Bytes: bytes.Swap(0)}
			if e, ok := lastErr.Swap("").(string); ok {
				s.LastErr = e
			}
			if err := enc.Encode(s); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			if os.Getppid() != parent {
				return errors.New("the bench exited")
			}
		}
	}
}
