package cliflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// UsageError is a command-line mistake: the caller prints it (one line) and exits 2.
type UsageError struct {
	Command string // e.g. "fanoutctl replay"
	Msg     string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("%s (run '%s --help' for its flags)", e.Msg, e.Command)
}

// Usagef is a UsageError for command with a formatted message.
func Usagef(command, format string, args ...any) *UsageError {
	return &UsageError{Command: command, Msg: fmt.Sprintf(format, args...)}
}

// Parse parses args into fs; fs.Name() is the command as a user types it ("fanoutctl replay"). On -h/--help it prints
// synopsis (when not empty) and the flags to stdout and returns flag.ErrHelp. A bad flag or value returns a
// *UsageError that names it, suggests close flag names and points to --help; Parse itself prints nothing then.
func Parse(fs *flag.FlagSet, args []string, synopsis string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if err == nil {
		return nil
	}
	if errors.Is(err, flag.ErrHelp) {
		PrintHelp(fs, synopsis, stdout)
		return flag.ErrHelp
	}
	return &UsageError{Command: fs.Name(), Msg: rephrase(fs, err.Error())}
}

// PrintHelp writes the synopsis and the flag defaults of fs to w.
func PrintHelp(fs *flag.FlagSet, synopsis string, w io.Writer) {
	if synopsis != "" {
		fmt.Fprintln(w, strings.TrimRight(synopsis, "\n"))
	} else {
		fmt.Fprintf(w, "usage: %s [flags]\n", fs.Name())
	}
	fmt.Fprintln(w, "\nflags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// rephrase turns the flag package's messages into ones that read well on their own.
func rephrase(fs *flag.FlagSet, msg string) string {
	const undefined = "flag provided but not defined: "
	if name, ok := strings.CutPrefix(msg, undefined); ok {
		name = strings.TrimLeft(name, "-")
		out := "unknown flag --" + name
		if s := similar(fs, name); len(s) > 0 {
			out += "; did you mean --" + strings.Join(s, " or --") + "?"
		}
		return out
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return "flag --" + strings.TrimLeft(name, "-") + " needs a value"
	}
	return strings.Replace(msg, "invalid value", "bad value", 1)
}

// similar lists up to three defined flags that contain name or are within two edits of it.
func similar(fs *flag.FlagSet, name string) []string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		if len(name) >= 3 && (strings.Contains(f.Name, name) || strings.Contains(name, f.Name)) || distance(f.Name, name) <= 2 {
			out = append(out, f.Name)
		}
	})
	sort.Strings(out)
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
