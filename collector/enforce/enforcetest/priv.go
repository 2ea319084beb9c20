package enforcetest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fanoutdev/fanout/internal/testpriv"
	"golang.org/x/sys/unix"
)

// RequirePrivileged skips the test when it cannot run (not root) unless FANOUT_REQUIRE_PRIVILEGED=1, in which case
// it fails instead.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	testpriv.Require(t, "BPF, cgroups and sock_diag")
}

// EnsureBPFFS mounts bpffs at /sys/fs/bpf when it is not mounted.
func EnsureBPFFS(t testing.TB) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return
	}
	if err := os.MkdirAll("/sys/fs/bpf", 0o755); err != nil {
		t.Fatalf("create /sys/fs/bpf: %v", err)
	}
	if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil && err != unix.EBUSY {
		t.Fatalf("mount bpffs: %v", err)
	}
}

var seq atomic.Int64

// PinDir returns a fresh pin dir /sys/fs/bpf/fanout-test-<pid>/<name>-<n>, removed (with its pins) at cleanup.
func PinDir(t testing.TB) string {
	t.Helper()
	EnsureBPFFS(t)
	base := fmt.Sprintf("/sys/fs/bpf/fanout-test-%d", os.Getpid())
	dir := filepath.Join(base, fmt.Sprintf("%s-%d", sanitize(t.Name()), seq.Add(1)))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatalf("create pin dir: %v", err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		os.Remove(base) // only succeeds once the last test's dir is gone
	})
	return dir
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// Cgroup2Mount returns the cgroup2 mount point from /proc/mounts.
func Cgroup2Mount(t testing.TB) string {
	t.Helper()
	f, err := os.Open("/proc/mounts")
	if err != nil {
		t.Fatalf("read /proc/mounts: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "cgroup2" {
			return fs[1]
		}
	}
	t.Fatal("no cgroup2 mount in /proc/mounts")
	return ""
}

// NodeCgroup creates a kubelet-like node subtree <cgroup2>/fanout-test-<pid>-<n>/kubepods/besteffort and returns
// (node root, pods root = node/kubepods). Everything is removed at cleanup (processes must be gone by then).
func NodeCgroup(t testing.TB) (node, pods string) {
	t.Helper()
	node = filepath.Join(Cgroup2Mount(t), fmt.Sprintf("fanout-test-%d-%d", os.Getpid(), seq.Add(1)))
	pods = filepath.Join(node, "kubepods")
	if err := os.MkdirAll(filepath.Join(pods, "besteffort"), 0o755); err != nil {
		t.Fatalf("create node cgroup: %v", err)
	}
	t.Cleanup(func() { RemoveCgroupTree(node) })
	return node, pods
}

// PodCgroup creates <pods>/besteffort/pod<uid>/<container> and returns (pod dir, container dir).
func PodCgroup(t testing.TB, pods, uid, container string) (pod, ctr string) {
	t.Helper()
	pod = filepath.Join(pods, "besteffort", "pod"+uid)
	ctr = filepath.Join(pod, container)
	if err := os.MkdirAll(ctr, 0o755); err != nil {
		t.Fatalf("create pod cgroup: %v", err)
	}
	return pod, ctr
}

// RemoveCgroupTree removes a cgroup directory tree bottom-up (cgroupfs needs rmdir, not unlink).
func RemoveCgroupTree(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			RemoveCgroupTree(filepath.Join(dir, e.Name()))
		}
	}
	unix.Rmdir(dir)
}

// CgroupID returns the cgroup id (kernfs inode) of a cgroup directory.
func CgroupID(t testing.TB, dir string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatalf("stat cgroup %s: %v", dir, err)
	}
	return st.Ino
}
