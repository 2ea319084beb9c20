// Package protect is the one definition of "protected workload" shared by the aggregator (kill switch, remediation),
// the agent (enforcement) and replay: a list of glob patterns over workload names written `Kind/namespace/name`
// (docs/interfaces.md).
//
// Pattern semantics:
//   - A pattern has exactly three segments separated by `/`: Kind, namespace and name. `SystemdUnit//*` (empty
//     namespace) is three segments.
//   - Each segment is matched with path.Match syntax: `*` matches any run of characters within the segment (never a
//     `/`), `?` one character, `[a-z]` a class, `\` escapes.
//   - The Kind segment is matched case-insensitively (`daemonset/kube-system/*` matches `DaemonSet/kube-system/x`);
//     namespace and name are case-sensitive, as in Kubernetes.
//   - A workload name that is not three segments matches nothing.
//
// Examples: `DaemonSet/kube-system/*` (every DaemonSet in kube-system), `*/*/coredns` (coredns of any kind in any
// namespace), `*/kube-system/kube-dns*`.
//
// Patterns are checked when a Set is built (Compile): a malformed pattern is an error naming it, never a silent
// non-match. Lists and patterns are bounded (MaxPatterns, MaxPatternLen).
package protect
