package protect

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// Bounds on a pattern list (flags, Helm values and scenario files are input).
const (
	MaxPatterns   = 1024
	MaxPatternLen = 512
)

// Defaults are the workloads no cluster can live without: DNS, CNI and node networking, control-plane static pods,
// fanout itself, and host processes. The agent and the aggregator both start from this list.
var Defaults = []string{
	"*/kube-system/coredns", "*/kube-system/kube-dns*", "*/*/coredns", "*/*/node-local-dns*",
	"*/kube-system/kube-proxy", "*/*/calico-*", "*/*/cilium*", "*/*/kube-flannel*", "*/*/flannel*",
	"*/*/weave-net", "*/*/aws-node", "*/*/antrea-*", "*/*/kube-router", "*/*/canal", "*/*/multus*",
	"*/kube-system/etcd*", "*/kube-system/kube-apiserver*", "*/kube-system/kube-controller-manager*",
	"*/kube-system/kube-scheduler*", "*/*/fanout*", "SystemdUnit//*",
}

// ErrBadPattern is returned (wrapped, naming the pattern) for a pattern Compile rejects.
var ErrBadPattern = errors.New("bad protected-workload pattern")

type pattern struct {
	raw  string
	kind string // lower-cased
	ns   string
	name string
}

// Set is a compiled list of patterns. The zero value protects nothing. Safe for concurrent reads.
type Set struct {
	pats  []pattern
	exact map[string]string // patterns without metacharacters (key: lower-cased Kind), for the common case
}

// Compile checks and compiles patterns. Empty entries (after trimming spaces) are skipped; duplicates are kept once.
func Compile(patterns []string) (*Set, error) {
	if len(patterns) > MaxPatterns {
		return nil, fmt.Errorf("%w: %d patterns, at most %d", ErrBadPattern, len(patterns), MaxPatterns)
	}
	s := &Set{exact: map[string]string{}}
	seen := map[string]bool{}
	for _, raw := range patterns {
		p := strings.TrimSpace(raw)
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		c, err := compileOne(p)
		if err != nil {
			return nil, err
		}
		if !hasMeta(p) {
			s.exact[c.kind+"/"+c.ns+"/"+c.name] = p
			continue
		}
		s.pats = append(s.pats, c)
	}
	return s, nil
}

// MustCompile is Compile for constant lists known to be valid (Defaults, tests); it panics on a bad pattern.
func MustCompile(patterns []string) *Set {
	s, err := Compile(patterns)
	if err != nil {
		panic(err)
	}
	return s
}

// Validate checks one pattern.
func Validate(p string) error {
	_, err := compileOne(strings.TrimSpace(p))
	return err
}

func compileOne(p string) (pattern, error) {
	if len(p) > MaxPatternLen {
		return pattern{}, fmt.Errorf("%w %.40q...: longer than %d bytes", ErrBadPattern, p, MaxPatternLen)
	}
	seg := strings.Split(p, "/")
	if len(seg) != 3 {
		return pattern{}, fmt.Errorf("%w %q: want Kind/namespace/name (3 segments), got %d", ErrBadPattern, p, len(seg))
	}
	for i, s := range seg {
		// path.Match reports a malformed pattern only when it gets that far; match against a string that walks the
		// whole pattern so every syntax error surfaces now.
		if _, err := path.Match(s, strings.Repeat("x", len(s))); err != nil {
			return pattern{}, fmt.Errorf("%w %q: segment %d %q: %v", ErrBadPattern, p, i+1, s, err)
		}
		if _, err := path.Match(s, ""); err != nil {
			return pattern{}, fmt.Errorf("%w %q: segment %d %q: %v", ErrBadPattern, p, i+1, s, err)
		}
	}
	return pattern{raw: p, kind: strings.ToLower(seg[0]), ns: seg[1], name: seg[2]}, nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// Match reports whether workload (Kind/namespace/name) matches one of the patterns.
func (s *Set) Match(workload string) bool {
	_, ok := s.Which(workload)
	return ok
}

// Which returns the first pattern workload matches (for logs and audit), and whether there is one.
func (s *Set) Which(workload string) (string, bool) {
	if s == nil {
		return "", false
	}
	kind, rest, ok := strings.Cut(workload, "/")
	if !ok {
		return "", false
	}
	ns, name, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(name, "/") {
		return "", false
	}
	lk := strings.ToLower(kind)
	if raw, ok := s.exact[lk+"/"+ns+"/"+name]; ok {
		return raw, true
	}
	for _, p := range s.pats {
		if segMatch(p.kind, lk) && segMatch(p.ns, ns) && segMatch(p.name, name) {
			return p.raw, true
		}
	}
	return "", false
}

func segMatch(pat, s string) bool {
	ok, _ := path.Match(pat, s)
	return ok
}

// Patterns returns the patterns as written, exact names first (sorted), then globs in their given order.
func (s *Set) Patterns() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.exact)+len(s.pats))
	for _, raw := range s.exact {
		out = append(out, raw)
	}
	sort.Strings(out)
	for _, p := range s.pats {
		out = append(out, p.raw)
	}
	return out
}

// Len is the number of distinct patterns.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.exact) + len(s.pats)
}
