package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/fanoutdev/fanout/internal/cliflag"
)

// parse parses a subcommand's flags. ok false means the caller returns code: 0 after --help (printed on stdout), 2
// after a bad flag (one line and a hint on stderr, no flag dump).
func parse(fs *flag.FlagSet, args []string, synopsis string, stdout, stderr io.Writer) (code int, ok bool) {
	err := cliflag.Parse(fs, args, synopsis, stdout)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	default:
		return usageErr(stderr, err), false
	}
}

// usageErr prints a command-line mistake as one line and returns exit code 2.
func usageErr(stderr io.Writer, err error) int {
	var ue *cliflag.UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\n", ue.Command, err)
	} else {
		fmt.Fprintf(stderr, "fanoutctl: %v\n", err)
	}
	return 2
}
