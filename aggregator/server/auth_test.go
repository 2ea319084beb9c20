package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/aggregator/engine"
	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/internal/testpki"
)

// A token file may not hold a wildcard node (one credential would report as the fleet) nor list a token twice.
func TestAgentTokenFileRefusesWildcards(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"shared-token-0123456789 *\n", "wildcard"},
		{"shared-token-0123456789 node-*\n", "wildcard"},
		{"shared-token-0123456789 Node_A\n", "not a valid node name"},
		{"shared-token-0123456789 node-a\nshared-token-0123456789 node-b\n", "twice"},
	} {
		if _, err := parseTokens(strings.NewReader(tc.file), "tokens", true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.file, err, tc.want)
		}
	}
	tok, err := parseTokens(strings.NewReader("# per node\ntoken-for-node-a-0123 node-a\ntoken-for-node-b-0123 node-b\n"), "tokens", true)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := tok.lookup("token-for-node-b-0123"); !ok || n != "node-b" {
		t.Fatalf("lookup: %q %v", n, ok)
	}
}

// mtlsServer serves a Server over TLS that verifies client certificates from ca (if given) and accepts per-node tokens.
func mtlsServer(t *testing.T, ca *testpki.CA, tokens map[string]string) string {
	t.Helper()
	srvPair, err := ca.Server("aggregator")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(srvPair.CertFile, srvPair.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("ca: %v", err)
	}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12})))
	now := time.Unix(10_000, 0)
	eng := engine.New(engine.DefaultConfig(), nil)
	srv, err := New(Config{Replica: "r", AllowCertAuth: true, AgentTokens: NewTokens(tokens), Now: func() time.Time { return now }},
		eng, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	eng.Start(now.Unix() - 1)
	api.RegisterAggregatorServer(gs, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// report opens a stream with the given client certificate (empty: none) and token (empty: none), sends one report
// for node and returns the status code the stream ends with (OK when the report was taken and the stream stays up).
func report(t *testing.T, addr string, ca *testpki.CA, cert testpki.Pair, token, node string) codes.Code {
	t.Helper()
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca.CAFile)
	pool.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cert.CertFile, cert.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	st, err := api.NewAggregatorClient(conn).Report(ctx)
	if err != nil {
		return status.Code(err)
	}
	if _, err := st.Recv(); err != nil { // the initial directive set, or the authentication error
		return status.Code(err)
	}
	pod := []*api.PodDelta{{Uid: "u", Workload: "Deployment/a/b", Delta: &api.Counters{Requests: 1}}}
	if err := st.Send(&api.NodeReport{Node: node, Sequence: 1, Timestamp: timestamppb.New(time.Unix(10_001, 0)), Pods: pod}); err != nil {
		return status.Code(err)
	}
	// A rejected report ends the stream with PermissionDenied; an accepted one leaves it open until the next set.
	rctx, rcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer rcancel()
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return status.Code(err)
	case <-rctx.Done():
		return codes.OK
	}
}

// Each certificate speaks for one node: node A's certificate cannot report as node B; a certificate for "*", one
// naming two nodes, and a token of another node than the certificate's are refused.
func TestCertificateBindsStreamToOneNode(t *testing.T) {
	ca, err := testpki.New(t.TempDir(), "fanout-test-ca")
	if err != nil {
		t.Fatal(err)
	}
	addr := mtlsServer(t, ca, map[string]string{"token-for-node-b-0123": "node-b", "wild-token-0123456789": "*"})
	issue := func(file, cn string, dns ...string) testpki.Pair {
		p, err := ca.Client(file, cn, dns...)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	nodeA := issue("node-a", "node-a", "node-a")
	sanOnly := issue("san-only", "", "node-c")
	for _, tc := range []struct {
		name  string
		cert  testpki.Pair
		token string
		node  string
		want  codes.Code
	}{
		{"own node", nodeA, "", "node-a", codes.OK},
		{"other node", nodeA, "", "node-b", codes.PermissionDenied},
		{"san only", sanOnly, "", "node-c", codes.OK},
		{"wildcard cn", issue("wild", "*"), "", "node-a", codes.Unauthenticated},
		{"wildcard san", issue("wild-san", "", "*"), "", "node-a", codes.Unauthenticated},
		{"two nodes", issue("two", "", "node-a", "node-b"), "", "node-b", codes.Unauthenticated},
		{"cn plus other san", issue("cn-san", "node-a", "node-b"), "", "node-b", codes.Unauthenticated},
		{"token of another node", nodeA, "token-for-node-b-0123", "node-b", codes.Unauthenticated},
		{"wildcard token", testpki.Pair{}, "wild-token-0123456789", "node-a", codes.Unauthenticated},
		{"token own node", testpki.Pair{}, "token-for-node-b-0123", "node-b", codes.OK},
		{"token other node", testpki.Pair{}, "token-for-node-b-0123", "node-a", codes.PermissionDenied},
		{"nothing", testpki.Pair{}, "", "node-a", codes.Unauthenticated},
	} {
		if got := report(t, addr, ca, tc.cert, tc.token, tc.node); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
