package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/internal/loopbackport"
)

// The aggregator scrapes an API server's /metrics (a recorded kube-apiserver page served over TLS), sends the token,
// exposes the scrape and the estimator's metrics, and saves the learned state on shutdown.
func TestHeadroomWiring(t *testing.T) {
	f, err := os.Open("../../aggregator/apiserverstats/testdata/load-a.prom.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := gzip.NewReader(f)
	page, _ := io.ReadAll(zr)
	f.Close()
	var hits, authed atomic.Int64
	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") == "Bearer s3cret" {
			authed.Add(1)
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write(page)
	}))
	defer api.Close()
	dir := t.TempDir()
	tok := filepath.Join(dir, "tokens")
	_ = os.WriteFile(tok, []byte("node-token-0123456789abcdef node-1\n"), 0o600)
	htok := filepath.Join(dir, "apitoken")
	_ = os.WriteFile(htok, []byte("s3cret\n"), 0o600)
	state := filepath.Join(dir, "headroom.json")
	mport, err := loopbackport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	maddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(mport))
	ctx, cancel := context.WithCancel(context.Background())
	var errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"--auth.agent-token-file", tok, "--insecure", "--listen", "127.0.0.1:0", "--metrics.listen", maddr,
			"--headroom.apiserver-url", api.URL, "--headroom.insecure-skip-verify", "--headroom.token-file", htok,
			"--headroom.interval", "1s", "--headroom.state-file", state}, &errb)
	}()
	var body string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + maddr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, `fanout_headroom_scrape_success{replica="`+strings.TrimPrefix(api.URL, "https://")+`"} 1`) && hits.Load() >= 2 {
			break
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(body, "fanout_headroom_scrape_success{") || !strings.Contains(body, `fanout_headroom_utilization_ratio{source="seats"}`) {
		t.Fatalf("headroom metrics missing:\n%s\nlog: %s", grep(body, "fanout_headroom"), errb.String())
	}
	if hits.Load() < 2 || authed.Load() != hits.Load() {
		t.Fatalf("%d scrapes, %d with the token", hits.Load(), authed.Load())
	}
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("state not saved on shutdown: %v", err)
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
