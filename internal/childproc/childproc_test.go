package childproc

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStartWaitStop(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "sleep.log")
	p, err := Start("sleep", log, []string{"X=1"}, "sh", "-c", "echo started $X; exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() || p.Pid() <= 0 {
		t.Fatalf("exited %v pid %d", p.Exited(), p.Pid())
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	if err := p.WaitOK(context.Background(), "http://"+l.Addr().String()+"/", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// The child writes to its log (with the environment given); on a loaded machine it may not have run yet.
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(string(b), "started 1"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log %q", b)
		}
		b, _ = os.ReadFile(log)
	}
	if err := p.Stop(2 * time.Second); err != nil || !p.Exited() {
		t.Fatalf("stop: %v exited %v", err, p.Exited())
	}
	// A process that exits during start-up is reported as such, not waited for.
	q, err := Start("false", filepath.Join(dir, "false.log"), nil, "false")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.WaitOK(context.Background(), "http://127.0.0.1:1/", 5*time.Second); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("WaitOK of an exited process: %v", err)
	}
}
