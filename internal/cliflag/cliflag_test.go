package cliflag

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func newFS() *flag.FlagSet {
	fs := flag.NewFlagSet("fanoutctl replay", flag.ContinueOnError)
	fs.Bool("json", false, "print JSON lines")
	fs.String("audit", "", "audit log file")
	fs.Duration("ttl", 0, "how long")
	return fs
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" = ok, "help" = ErrHelp
	}{
		{[]string{"--json"}, ""},
		{[]string{"-h"}, "help"},
		{[]string{"--help"}, "help"},
		{[]string{"--bogus"}, "unknown flag --bogus (run 'fanoutctl replay --help' for its flags)"},
		{[]string{"--jsn"}, "unknown flag --jsn; did you mean --json? (run 'fanoutctl replay --help' for its flags)"},
		{[]string{"--audit"}, "flag --audit needs a value (run 'fanoutctl replay --help' for its flags)"},
		{[]string{"--ttl=soon"}, `bad value "soon" for flag -ttl: parse error (run 'fanoutctl replay --help' for its flags)`},
	} {
		var out bytes.Buffer
		fs := newFS()
		err := Parse(fs, tc.args, "usage: fanoutctl replay FILE [flags]", &out)
		switch tc.want {
		case "":
			if err != nil {
				t.Errorf("%v: %v", tc.args, err)
			}
		case "help":
			if !errors.Is(err, flag.ErrHelp) || !strings.HasPrefix(out.String(), "usage: fanoutctl replay FILE") || !strings.Contains(out.String(), "-audit string") {
				t.Errorf("%v: err %v, help %q", tc.args, err, out.String())
			}
		default:
			var ue *UsageError
			if !errors.As(err, &ue) || err.Error() != tc.want {
				t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
			}
			if out.Len() != 0 || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: printed %q / multi-line error %q", tc.args, out.String(), err)
			}
		}
	}
}
