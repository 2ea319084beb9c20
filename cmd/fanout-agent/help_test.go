package main

import (
	"errors"
	"flag"
	"testing"
)

// TestHelpAndBadFlag: --help is flag.ErrHelp, which main turns into exit 0 like every fanout command; a bad flag is
// a one-line error with a hint (main prints it and exits 2).
func TestHelpAndBadFlag(t *testing.T) {
	for _, h := range []string{"--help", "-h"} {
		if _, err := parseFlags([]string{h}); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: %v, want flag.ErrHelp", h, err)
		}
	}
	_, err := parseFlags([]string{"--bogus"})
	if want := "unknown flag --bogus (run 'fanout-agent --help' for its flags)"; err == nil || err.Error() != want {
		t.Errorf("--bogus: %v, want %q", err, want)
	}
}
