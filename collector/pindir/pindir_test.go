package pindir_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/fanoutdev/fanout/bpf"
	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
	"github.com/fanoutdev/fanout/collector/pindir"
)

func TestNamesUnique(t *testing.T) {
	all := pindir.All()
	seen := map[string]bool{}
	for _, n := range all {
		if seen[n] {
			t.Errorf("pin name %s listed twice", n)
		}
		seen[n] = true
	}
	if got := pindir.ForInstance("node-1"); got != "/sys/fs/bpf/fanout/node-1" {
		t.Fatalf("ForInstance = %s", got)
	}
}

// A program attached through a pinned link: a second AttachOrUpdate on the same cgroup swaps the program into the
// same link (no detach); a different cgroup replaces the link; Uninstall removes every pin and the dir.
func TestAttachOrUpdateAndUninstall(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	enforcetest.EnsureBPFFS(t)
	dir := filepath.Join(pindir.BPFFS, fmt.Sprintf("fanout-test-pindir-%d", os.Getpid()), "inst")
	if err := pindir.Setup(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(dir)) })
	if ok, err := pindir.IsBPFFS(dir); err != nil || !ok {
		t.Fatalf("IsBPFFS(%s) = %v, %v", dir, ok, err)
	}
	nodeA, _ := enforcetest.NodeCgroup(t)
	nodeB, _ := enforcetest.NodeCgroup(t)
	log := slog.New(slog.DiscardHandler)

	load := func() *bpf.EnforceObjects {
		var o bpf.EnforceObjects
		if err := bpf.LoadEnforceObjects(&o, &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: dir}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return &o
	}
	attach := func(o *bpf.EnforceObjects, cg string) link.ID {
		l, err := pindir.AttachOrUpdate(pindir.Attachment{Dir: dir, Name: pindir.LinkEnforceConnect4, Cgroup: cg,
			Attach: ebpf.AttachCGroupInet4Connect, Program: o.FanoutEnforceConnect4}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		return info.ID
	}
	if m := pindir.Missing(dir, pindir.EnforceLinks...); !slices.Equal(m, pindir.EnforceLinks) {
		t.Fatalf("Missing before attach = %v", m)
	}
	first := attach(load(), nodeA)
	second := attach(load(), nodeA)
	if first != second {
		t.Fatalf("same cgroup: link %d replaced by %d, want an in-place update", first, second)
	}
	third := attach(load(), nodeB)
	if third == first {
		t.Fatal("other cgroup: pinned link kept")
	}
	if m := pindir.Missing(dir, pindir.LinkEnforceConnect4); len(m) != 0 {
		t.Fatalf("link not pinned: %v", m)
	}
	if err := pindir.Uninstall(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("pin dir left after Uninstall: %v", entries)
	}
}
