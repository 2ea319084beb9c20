package testpriv

import (
	"os"
	"testing"
)

// Require skips t unless running as root; with FANOUT_REQUIRE_PRIVILEGED=1 it fails instead. why says what needs
// root (e.g. "cgroups", "BPF and cgroups").
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("FANOUT_REQUIRE_PRIVILEGED") == "1" {
		t.Fatalf("FANOUT_REQUIRE_PRIVILEGED=1 but not root: %s needs root", why)
	}
	t.Skipf("needs root (%s); set FANOUT_REQUIRE_PRIVILEGED=1 to make this a failure", why)
}
