package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Privileged integration test: real cgroups, real HTTP/2 TLS clients (this test binary re-executed into the cgroup
// with CLONE_INTO_CGROUP) against local httptest servers on 127.0.0.1 and ::1.
//
// Tolerances: connects exact; tx_bytes exact (every byte the client writes to its TCP sockets); rx_bytes at least
// what the client read and at most 1 KiB more per connection (the server's close_notify/GOAWAY the client may not
// read); requests (egress payload segments) between N and 2N+10 for N requests on one connection.

const helperEnv = "FANOUT_TEST_HTTP_CLIENT"

// holdEnv makes the HTTP client helper report after its requests and then hold its connection open, idle, this long.
const holdEnv = "FANOUT_TEST_HOLD"

type clientResult struct {
	Dials   int64 `json:"dials"`
	Written int64 `json:"written"`
	Read    int64 `json:"read"`
	OK      int   `json:"ok"`
	// TTFBus: the client's time from writing each request to the first response byte, microseconds.
	TTFBus []int64 `json:"ttfb_us"`
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(httpClientMain())
	}
	if addr := os.Getenv(echoClientEnv); addr != "" {
		os.Exit(echoClientMain(addr))
	}
	if addr := os.Getenv(dialEnv); addr != "" {
		n, _ := strconv.Atoi(os.Getenv(dialEnv + "_N"))
		for range max(n, 1) {
			dialMain(addr)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type countingConn struct {
	net.Conn
	w, r *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.w.Add(int64(n))
	return n, err
}
func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.r.Add(int64(n))
	return n, err
}

// httpClientMain: args URL N CAFILE; does N GETs over one HTTP/2 TLS connection and prints a clientResult.
func httpClientMain() int {
	url, caFile := os.Args[len(os.Args)-3], os.Args[len(os.Args)-1]
	n, _ := strconv.Atoi(os.Args[len(os.Args)-2])
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	var dials, w, r atomic.Int64
	d := &net.Dialer{}
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			dials.Add(1)
			return countingConn{Conn: c, w: &w, r: &r}, nil
		},
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	res := clientResult{}
	for range n {
		var wrote time.Time
		trace := &httptrace.ClientTrace{
			WroteRequest:         func(httptrace.WroteRequestInfo) { wrote = time.Now() },
			GotFirstResponseByte: func() { res.TTFBus = append(res.TTFBus, time.Since(wrote).Microseconds()) },
		}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			fmt.Fprintln(os.Stderr, "not HTTP/2:", resp.Proto)
			return 1
		}
		res.OK++
	}
	if hold, err := time.ParseDuration(os.Getenv(holdEnv)); err == nil {
		// Report with the connection still open, then keep it open (idle) for hold.
		res.Dials, res.Written, res.Read = dials.Load(), w.Load(), r.Load()
		json.NewEncoder(os.Stdout).Encode(res)
		time.Sleep(hold)
		return 0
	}
	tr.CloseIdleConnections()
	time.Sleep(50 * time.Millisecond) // let close_notify/FIN go out
	res.Dials, res.Written, res.Read = dials.Load(), w.Load(), r.Load()
	json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

func tlsServer(t *testing.T, network, addr string, body int) *httptest.Server {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	payload := strings.Repeat("x", body)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, payload)
	}))
	s.Listener.Close()
	s.Listener = l
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func writeCA(t *testing.T, s *httptest.Server) string {
	f := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// helperIn returns the test binary as a helper process to be born in cgroup dir (CLONE_INTO_CGROUP), with env added
// to its environment and args after the test flags.
func helperIn(t *testing.T, dir, env string, args ...string) *exec.Cmd {
	t.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cg.Close() })
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), env)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	cmd.Stderr = os.Stderr
	return cmd
}

// runClientIn runs the HTTP client helper inside cgroup dir.
func runClientIn(t *testing.T, dir, url string, n int, ca string) clientResult {
	t.Helper()
	out, err := helperIn(t, dir, helperEnv+"=1", url, strconv.Itoa(n), ca).Output()
	if err != nil {
		t.Fatalf("client %s: %v", url, err)
	}
	var res clientResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}
	return res
}

func makeCgroup(t *testing.T, parent, name string) (string, uint64) {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove cgroup %s: %v", dir, err)
		}
	})
	id, err := cgroupID(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id
}

func TestIntegrationHTTP2Clients(t *testing.T) {
	requirePrivileged(t)
	mnt, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := makeCgroup(t, mnt, fmt.Sprintf("fanout-test-%d", os.Getpid()))
	podA, idA := makeCgroup(t, root, "podA")
	podB, idB := makeCgroup(t, root, "podB")
	podC, idC := makeCgroup(t, root, "podC")

	api4 := tlsServer(t, "tcp4", "127.0.0.1:0", 2000)
	api6 := tlsServer(t, "tcp6", "[::1]:0", 300)
	other := tlsServer(t, "tcp4", "127.0.0.1:0", 2000) // same address, other port: not the API server

	p := newTestProbe(t, Config{CgroupPath: root})
	var eps []Endpoint
	for _, s := range []*httptest.Server{api4, api6} {
		ap := netip.MustParseAddrPort(s.Listener.Addr().String())
		eps = append(eps, Endpoint{Addr: ap.Addr(), Port: ap.Port()})
	}
	if err := p.SetEndpoints(eps); err != nil {
		t.Fatal(err)
	}

	const n = 20
	resA := runClientIn(t, podA, api4.URL, n, writeCA(t, api4))
	resB := runClientIn(t, podB, api6.URL, n, writeCA(t, api6))
	resC := runClientIn(t, podC, other.URL, n, writeCA(t, other))
	if resC.OK != n {
		t.Fatalf("other client: %+v", resC)
	}
	time.Sleep(100 * time.Millisecond)
	got, err := p.ReadCounters()
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := got[idC]; ok && !c.IsZero() {
		t.Errorf("non-API traffic counted for podC: %+v", c)
	}
	for _, tc := range []struct {
		name string
		id   uint64
		res  clientResult
	}{{"podA v4", idA, resA}, {"podB v6", idB, resB}} {
		c := got[tc.id]
		t.Logf("%s: client %+v, kernel %+v", tc.name, tc.res, c)
		if c.Connects != uint64(tc.res.Dials) {
			t.Errorf("%s: connects %d, client dialed %d", tc.name, c.Connects, tc.res.Dials)
		}
		if c.TxBytes != uint64(tc.res.Written) {
			t.Errorf("%s: tx_bytes %d, client wrote %d", tc.name, c.TxBytes, tc.res.Written)
		}
		if c.RxBytes < uint64(tc.res.Read) || c.RxBytes > uint64(tc.res.Read)+1024*uint64(tc.res.Dials) {
			t.Errorf("%s: rx_bytes %d, client read %d (want within +1 KiB per connection)", tc.name, c.RxBytes, tc.res.Read)
		}
		if c.TxSegments < n || c.TxSegments > 2*n+10 {
			t.Errorf("%s: requests (tx segments) %d, want %d..%d", tc.name, c.TxSegments, n, 2*n+10)
		}
		if c.TxPackets < c.TxSegments || c.RxPackets == 0 || c.TxDropped != 0 {
			t.Errorf("%s: packets %+v", tc.name, c)
		}
	}
}
