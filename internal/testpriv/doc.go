// Package testpriv is the one rule for fanout's privileged tests (root: BPF, cgroups, sock_diag): they skip when not
// root, except under FANOUT_REQUIRE_PRIVILEGED=1 (CI, `make test` as root), where a missing privilege is a failure.
package testpriv
