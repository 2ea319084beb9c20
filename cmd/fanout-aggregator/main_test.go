package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tok, []byte("# agents\nnode-a-token-0123456789 node-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if code := run(context.Background(), []string{"--auth.agent-token-file", tok, "--insecure", "--config.check"}, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"--config.check"}, &errb); code != 2 || !strings.Contains(errb.String(), "must authenticate") {
		t.Fatalf("no auth: exit %d: %s", code, errb.String())
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("short node-a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"--auth.agent-token-file", bad, "--insecure", "--config.check"}, &errb); code != 1 || !strings.Contains(errb.String(), "line 1") {
		t.Fatalf("bad token file: exit %d: %s", code, errb.String())
	}
}
