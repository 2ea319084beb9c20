package deploy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanoutdev/fanout/api"
	"github.com/fanoutdev/fanout/internal/testpki"
)

// TestBinariesSecureByDefault runs the real binaries: each refuses a bearer token over plaintext unless --insecure,
// naming the flag; the aggregator refuses a wildcard token; over mTLS it takes a report for the node of the client
// certificate only, and refuses a certificate for "*".
func TestBinariesSecureByDefault(t *testing.T) {
	bins := buildBinaries(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	agentTok := write("agent-token", "node-a-token-0123456789\n")
	aggTok := write("agent-tokens", "node-a-token-0123456789 node-a\n")
	wildTok := write("wild-tokens", "shared-token-0123456789 *\n")
	run := func(bin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bins, bin), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		bin  string
		args []string
	}{
		{"fanout-aggregator", []string{"--auth.agent-token-file=" + aggTok, "--config.check"}},
		{"fanout-agent", []string{"--node.name=node-a", "--aggregator.address=127.0.0.1:1", "--aggregator.token-file=" + agentTok, "--config.check"}},
		{"fanoutctl", []string{"status", "--aggregator=127.0.0.1:1", "--token-file=" + agentTok}},
	} {
		out, err := run(c.bin, c.args...)
		if err == nil || !strings.Contains(out, "--insecure") {
			t.Errorf("%s %v: want a refusal naming --insecure, got err %v:\n%s", c.bin, c.args, err, out)
		}
	}
	if out, err := run("fanout-aggregator", "--auth.agent-token-file="+aggTok, "--insecure", "--config.check"); err != nil {
		t.Errorf("--insecure: %v\n%s", err, out)
	}
	if out, err := run("fanout-aggregator", "--auth.agent-token-file="+wildTok, "--insecure", "--config.check"); err == nil || !strings.Contains(out, "wildcard") {
		t.Errorf("wildcard token file: want a refusal, got err %v:\n%s", err, out)
	}

	// The real aggregator over mTLS.
	ca, err := testpki.New(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server("server", "fanout-aggregator")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agg := exec.CommandContext(ctx, filepath.Join(bins, "fanout-aggregator"), "--listen="+addr, "--metrics.listen=",
		"--tls.cert="+srv.CertFile, "--tls.key="+srv.KeyFile, "--tls.client-ca="+ca.CAFile, "--log.level=warn")
	stderr, err := agg.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agg.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = agg.Wait() }()
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Logf("aggregator: %s", sc.Text())
		}
	}()
	client := func(file, cn string) *tls.Config {
		p, err := ca.Client(file, cn)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(ca.CAFile)
		pool.AppendCertsFromPEM(b)
		return &tls.Config{RootCAs: pool, ServerName: "fanout-aggregator", Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	nodeA, wild := client("node-a", "node-a"), client("wild", "*")
	for _, c := range []struct {
		name string
		tc   *tls.Config
		node string
		want codes.Code
	}{
		{"node-a as node-a", nodeA, "node-a", codes.OK},
		{"node-a as node-b", nodeA, "node-b", codes.PermissionDenied},
		{"* as node-a", wild, "node-a", codes.Unauthenticated},
	} {
		if got := reportOnce(t, addr, c.tc, c.node); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// reportOnce sends one report for node and returns how the stream ends: OK if the report was taken and the stream
// stayed up, else the stream's status code. It retries while the aggregator is still starting.
func reportOnce(t *testing.T, addr string, tc *tls.Config, node string) codes.Code {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		code := func() codes.Code {
			st, err := api.NewAggregatorClient(conn).Report(ctx)
			if err != nil {
				return status.Code(err)
			}
			if _, err := st.Recv(); err != nil {
				return status.Code(err)
			}
			now := time.Now()
			pod := []*api.PodDelta{{Uid: "u", Workload: "Deployment/a/b", Delta: &api.Counters{Requests: 1}}}
			if err := st.Send(&api.NodeReport{Node: node, Sequence: uint64(now.UnixNano()), Timestamp: timestamppb.New(now), Pods: pod}); err != nil {
				return status.Code(err)
			}
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
			case <-time.After(500 * time.Millisecond):
				return codes.OK
			}
		}()
		cancel()
		if code != codes.Unavailable || time.Now().After(deadline) {
			return code
		}
		time.Sleep(200 * time.Millisecond)
	}
}
