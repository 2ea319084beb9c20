package enforcetest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Client modes (FANOUT_TEST_CLIENT): a re-exec'd copy of the test binary that runs as a "pod process" inside a
// test cgroup and reports one line per event on stdout: "<event> <unix ns> [detail]".
const (
	// ModeWatch: GET /ok over HTTP/2 ("ok"), then hold GET /watch open on the same connection; when it fails print
	// "err", then try GET /ok on fresh connections every 10 ms ("ok" / "dialerr") until the deadline.
	ModeWatch = "watch"
	// ModeProbe: GET /ok on a fresh connection every 10 ms ("ok" / "err") until the deadline.
	ModeProbe = "probe"
)

const (
	envMode = "FANOUT_TEST_CLIENT"
	envURL  = "FANOUT_TEST_URL"
	envCA   = "FANOUT_TEST_CA"
	envFor  = "FANOUT_TEST_FOR"
)

// Event is one line of a client's report.
type Event struct {
	Kind   string // ok, err, dialerr, exit
	At     time.Time
	Detail string
}

// Client is a running client process.
type Client struct {
	Cmd    *exec.Cmd
	Events chan Event
}

// MaybeRunClient runs the client role when the process was started by StartClient, then exits. Call it first in
// TestMain.
func MaybeRunClient() {
	mode := os.Getenv(envMode)
	if mode == "" {
		return
	}
	d, _ := time.ParseDuration(os.Getenv(envFor))
	os.Exit(runClient(mode, os.Getenv(envURL), os.Getenv(envCA), d))
}

func report(kind, detail string) {
	fmt.Printf("%s %d %s\n", kind, time.Now().UnixNano(), strings.ReplaceAll(detail, "\n", " "))
}

func runClient(mode, url, caFile string, d time.Duration) int {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		report("fatal", err.Error())
		return 1
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	newTransport := func() *http.Transport {
		return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	}
	deadline := time.Now().Add(d)
	get := func(tr *http.Transport, path string) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+path, nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.ProtoMajor != 2 {
			return fmt.Errorf("got %s, want HTTP/2", resp.Proto)
		}
		return nil
	}
	probeLoop := func(failKind string) int {
		for time.Now().Before(deadline) {
			tr := newTransport()
			if err := get(tr, "/ok"); err != nil {
				report(failKind, err.Error())
			} else {
				report("ok", "")
			}
			tr.CloseIdleConnections()
			time.Sleep(10 * time.Millisecond)
		}
		report("exit", "")
		return 0
	}
	switch mode {
	case ModeProbe:
		return probeLoop("err")
	case ModeWatch:
		tr := newTransport()
		if err := get(tr, "/ok"); err != nil {
			report("err", err.Error())
			return 1
		}
		report("ok", "")
		req, _ := http.NewRequest(http.MethodGet, url+"/watch", nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			report("err", err.Error())
			return probeLoop("dialerr")
		}
		report("watching", resp.Proto)
		_, err = io.Copy(io.Discard, resp.Body)
		report("err", fmt.Sprintf("watch ended: %v", err))
		return probeLoop("dialerr")
	}
	report("fatal", "unknown mode "+mode)
	return 1
}

// StartClient starts a client process directly inside cgroup dir (clone3 CLONE_INTO_CGROUP, so it never runs
// elsewhere) for at most d. It is killed at cleanup.
func StartClient(t testing.TB, dir, mode string, srv *Server, d time.Duration) *Client {
	t.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatalf("open cgroup %s: %v", dir, err)
	}
	defer cg.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envURL+"="+srv.URL, envCA+"="+srv.CAFile, envFor+"="+d.String())
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start client in %s: %v", dir, err)
	}
	c := &Client{Cmd: cmd, Events: make(chan Event, 4096)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), " ", 3)
			if len(f) < 2 {
				continue
			}
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			ev := Event{Kind: f[0], At: time.Unix(0, ns)}
			if len(f) == 3 {
				ev.Detail = f[2]
			}
			c.Events <- ev
		}
		close(c.Events)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// Next returns the next event, failing the test after timeout.
func (c *Client) Next(t testing.TB, timeout time.Duration) Event {
	t.Helper()
	select {
	case ev, ok := <-c.Events:
		if !ok {
			t.Fatal("client exited without reporting")
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("client reported nothing within %s", timeout)
	}
	return Event{}
}

// WaitFor returns the first event of kind, failing the test after timeout.
func (c *Client) WaitFor(t testing.TB, kind string, timeout time.Duration) Event {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		ev := c.Next(t, time.Until(end))
		if ev.Kind == kind {
			return ev
		}
		if ev.Kind == "fatal" {
			t.Fatalf("client: %s", ev.Detail)
		}
	}
}
