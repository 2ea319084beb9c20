package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/pprof/profile"
)

// profileSink receives the agent's continuous profiles (its --pyroscope.url) and keeps each upload as a pprof file
// named by profile kind, the condition running when it arrived and a sequence number, e.g. cpu-load-007.pb.gz, for
// `go tool pprof -top bin/fanout-agent DIR/cpu-load-*.pb.gz`.
type profileSink struct {
	URL  string
	dir  string
	cond atomic.Value // string: the condition now running
	srv  *http.Server
	mu   sync.Mutex
	seq  int
	errs []error
}

func startProfileSink(dir string) (*profileSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("profile dir: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen profile sink: %w", err)
	}
	s := &profileSink{URL: "http://" + l.Addr().String(), dir: dir}
	s.cond.Store("start-up")
	s.srv = &http.Server{Handler: http.HandlerFunc(s.ingest), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *profileSink) setCondition(c string) {
	if s != nil {
		s.cond.Store(c)
	}
}

func (s *profileSink) ingest(w http.ResponseWriter, r *http.Request) {
	f, _, err := r.FormFile("profile")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer f.Close()
	raw, err := io.ReadAll(f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p, err := profile.Parse(bytes.NewReader(raw))
	if err != nil || len(p.SampleType) == 0 {
		http.Error(w, fmt.Sprintf("not a profile: %v", err), http.StatusBadRequest)
		return
	}
	kind := p.SampleType[0].Type
	if kind == "samples" && len(p.SampleType) > 1 { // the CPU profile's types are samples/count, cpu/nanoseconds
		kind = p.SampleType[1].Type
	}
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%s-%s-%03d.pb.gz", kind, s.cond.Load().(string), s.seq)
	s.mu.Unlock()
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil { // re-encoded gzipped, whatever the upload's encoding
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := os.WriteFile(filepath.Join(s.dir, name), buf.Bytes(), 0o644); err != nil {
		s.mu.Lock()
		s.errs = append(s.errs, err)
		s.mu.Unlock()
	}
}

func (s *profileSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(append(s.errs, err)...)
}
