package main

import (
	"bytes"
	"context"
	"testing"
)

// TestHelpAndBadFlag: --help exits 0 like every fanout command; a bad flag is one line with a hint, exit 2.
func TestHelpAndBadFlag(t *testing.T) {
	for _, h := range []string{"--help", "-h"} {
		var errb bytes.Buffer
		if code := run(context.Background(), []string{h}, &errb); code != 0 || errb.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q", h, code, errb.String())
		}
	}
	var errb bytes.Buffer
	code := run(context.Background(), []string{"--bogus"}, &errb)
	want := "fanout-aggregator: unknown flag --bogus (run 'fanout-aggregator --help' for its flags)\n"
	if code != 2 || errb.String() != want {
		t.Errorf("--bogus: exit %d, stderr %q, want %q", code, errb.String(), want)
	}
}
