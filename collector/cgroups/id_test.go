package cgroups

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fanoutdev/fanout/internal/testpriv"
)

// requirePrivileged skips unprivileged runs unless FANOUT_REQUIRE_PRIVILEGED=1, which turns a skip into a failure.
func requirePrivileged(t *testing.T) {
	t.Helper()
	testpriv.Require(t, "creating cgroups")
}

func TestResolverRealCgroups(t *testing.T) {
	requirePrivileged(t)
	mount, err := Cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	const uid = "0f4a1b2c-3d4e-5f60-7182-93a4b5c6d7e8"
	root := filepath.Join(mount, "fanout-test-cgroups-"+strconv.Itoa(os.Getpid()))
	ctr := filepath.Join(root, "kubepods", "besteffort", "pod"+uid, "app")
	if err := os.MkdirAll(ctr, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// cgroups are removed leaf first with rmdir (their control files cannot be unlinked).
		for p := ctr; len(p) >= len(root); p = filepath.Dir(p) {
			if err := os.Remove(p); err != nil {
				t.Errorf("remove %s: %v", p, err)
			}
		}
	})
	if got, err := PodsCgroup(root); err != nil || got != filepath.Join(root, "kubepods") {
		t.Fatalf("PodsCgroup = %q, %v", got, err)
	}
	id, err := ID(ctr)
	if err != nil || id == 0 {
		t.Fatalf("ID = %d, %v", id, err)
	}
	r := NewResolver(mount, filepath.Join(root, "kubepods"))
	p, ok := r.Path(id)
	rel := "/" + filepath.Base(root) + "/kubepods/besteffort/pod" + uid + "/app"
	if !ok || p != rel {
		t.Fatalf("Path(%d) = %q, %v; want %q", id, p, ok, rel)
	}
	if info := Parse(p); info.PodUID != uid || info.ContainerID != "app" || info.QoS != QoSBestEffort {
		t.Fatalf("Parse(%q) = %+v", p, info)
	}
	// A cgroup created after the first scan is found by the rescan on a miss (MinRescan 0).
	r.MinRescan = 0
	late := filepath.Join(root, "kubepods", "besteffort", "pod"+uid, "late")
	if err := os.Mkdir(late, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(late)
	lid, _ := ID(late)
	if p, ok := r.Path(lid); !ok || filepath.Base(p) != "late" {
		t.Fatalf("late cgroup: %q, %v", p, ok)
	}
	if _, ok := r.Path(1 << 62); ok {
		t.Fatal("unknown id resolved")
	}
}
