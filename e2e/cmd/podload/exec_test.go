package main

import (
	"strings"
	"testing"
	"time"
)

func TestExecOnceCountsAndClassifies(t *testing.T) {
	home := t.TempDir()
	cfg := config{timeout: 5 * time.Second}
	cfg.command = []string{"/bin/sh", "-c", `test "$HOME" = "` + home + `" && printf 0123456789`}
	n, err := execOnce(t.Context(), cfg, home)
	if err != nil || n != 10 {
		t.Fatalf("ok run: n=%d err=%v (want 10 bytes, private HOME)", n, err)
	}
	cfg.command = []string{"/bin/sh", "-c", `echo "Unable to connect to the server: dial tcp 127.0.0.1:1: connect: operation not permitted" >&2; exit 1`}
	_, err = execOnce(t.Context(), cfg, home)
	if err == nil || !denied(err) {
		t.Fatalf("denied run: err=%v, want a denied error", err)
	}
	cfg.command = []string{"/bin/sh", "-c", `echo "Error from server (Forbidden)" >&2; exit 1`}
	if _, err = execOnce(t.Context(), cfg, home); err == nil || denied(err) || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("server error: err=%v, want a plain error carrying stderr", err)
	}
	cfg.timeout = 200 * time.Millisecond
	cfg.command = []string{"/bin/sh", "-c", "sleep 30"}
	start := time.Now()
	if _, err = execOnce(t.Context(), cfg, home); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("timeout: err=%v after %s, want an error within the timeout", err, time.Since(start))
	}
}

func TestTailWriterBounded(t *testing.T) {
	var w tailWriter
	for range 100 {
		_, _ = w.Write([]byte(strings.Repeat("x", 100)))
	}
	_, _ = w.Write([]byte("END"))
	if len(w.b) != tailMax || !strings.HasSuffix(w.String(), "END") {
		t.Fatalf("tail len %d, suffix %q", len(w.b), w.String()[len(w.String())-3:])
	}
}
