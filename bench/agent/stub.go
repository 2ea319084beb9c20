package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fanoutdev/fanout/internal/testpki"
)

// stubAPIServer stands in for the API server the pods call: HTTPS with HTTP/2 on loopback, every GET answered with
// ~1 KiB of JSON after ~1 ms (the kernel probe sees a request, a short wait, a response, as with a cached GET).
type stubAPIServer struct {
	Addr   string // 127.0.0.1:<port>
	CAFile string
	srv    *http.Server
	served atomic.Int64
	conns  atomic.Int64
}

// stubBody is the answer: a Pod-sized JSON object of 1 KiB.
var stubBody = func() []byte {
	head := `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"bench","namespace":"bench","annotations":{"pad":"`
	tail := `"}}}`
	return []byte(head + strings.Repeat("x", 1024-len(head)-len(tail)) + tail)
}()

func startStub(dir string, delay time.Duration) (*stubAPIServer, error) {
	ca, err := testpki.New(dir, "bench-stub-ca")
	if err != nil {
		return nil, err
	}
	pair, err := ca.Server("bench-stub")
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load stub certificate: %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen stub: %w", err)
	}
	s := &stubAPIServer{Addr: l.Addr().String(), CAFile: ca.CAFile}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(delay)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(stubBody)
		s.served.Add(1)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}},
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		}}
	go func() {
		if err := s.srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("stub API server: %v\n", err)
		}
	}()
	return s, nil
}

func (s *stubAPIServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return errors.Join(fmt.Errorf("stop stub API server: %w", err), s.srv.Close())
	}
	return nil
}
