package scenario

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxLineProbes bounds the re-parses syntaxErrorLine does on a broken file.
const maxLineProbes = 400

// syntaxErrorLine finds the line a YAML syntax error is on. yaml.v3 reports the line where the enclosing construct
// started, one too low for parser errors (e.g. "line 3: did not find expected '-' indicator" for a bad indent on
// line 5). The line to fix is the first line from which every longer prefix of the file fails to parse: a prefix that
// fails only because it cuts a multi-line flow or quoted string is recognised by a longer prefix parsing again.
// reported is yaml.v3's line; it is returned when the search finds nothing better.
func syntaxErrorLine(data []byte, reported int) int {
	const confirm = 50 // failing prefixes after a candidate before it is taken
	start := max(reported-1, 1)
	lines := bytes.SplitAfter(data, []byte("\n"))
	candidate := 0
	for k := start; k <= len(lines) && k < start+maxLineProbes; k++ {
		var n yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:k], nil), &n)
		switch {
		case err == nil:
			candidate = 0 // an earlier failure was a cut construct
		case strings.Contains(err.Error(), "end of stream"):
			// cut inside a quoted string: says nothing either way
		case candidate == 0:
			candidate = k
		}
		if candidate > 0 && k-candidate >= confirm {
			break
		}
	}
	if candidate > 0 {
		return candidate
	}
	return reported
}
