package scenario

import (
	"errors"
	"strings"
	"testing"
)

// TestSyntaxErrorLine: a YAML syntax error names the line to fix, not the line where yaml.v3's enclosing construct
// started (before the fix: line 3 for the bad indent on line 5, line 4 for the flow mapping opened on line 5).
func TestSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
	}{
		{"missing colon", "version: 1\nname foo\nduration: 10s\n", 2},
		{"bad indent in a sequence item", "version: 1\nname: x\nworkloads:\n  - name: A/b/c\n   per_pod: 3\nnodes: 3\n", 5},
		{"unclosed flow mapping", "version: 1\nname: x\nworkloads:\n  - name: A/b/c\n    per_pod: {requests_per_s: 1, rx: 2\n  - name: B/c/d\nnodes: 3\n", 5},
		{"unclosed flow after a valid multi-line one", "version: 1\nname: x\nw: {a: 1,\n  b: 2}\nc: [1,\n  2\nnodes: 3\n", 5},
		{"stray indent", "version: 1\nname: \"multi\n  line\"\nnodes: 3\n  duration: 4s\n", 5},
		{"tab", "version: 1\n\tname: x\nnodes: 3\n", 2},
	} {
		_, err := DecodeBytes([]byte(tc.doc))
		var se *Error
		if !errors.As(err, &se) {
			t.Errorf("%s: %v, want a *scenario.Error", tc.name, err)
			continue
		}
		if se.Line != tc.line {
			t.Errorf("%s: line %d, want %d (%v)", tc.name, se.Line, tc.line, err)
		}
		if strings.Count(err.Error(), "line ") != 1 {
			t.Errorf("%s: the line is named more than once: %v", tc.name, err)
		}
	}
}
