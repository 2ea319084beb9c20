package memtrim

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFileKiB is the process's resident file-backed memory (RssFile in /proc/self/status).
func rssFileKiB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile")
	return 0
}

func TestImageMappings(t *testing.T) {
	ms, err := ImageMappings("self")
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, m := range ms {
		if m.End <= m.Start {
			t.Fatalf("mapping %+v", m)
		}
		total += m.Len()
	}
	if total < 1<<20 { // a Go test binary's code and read-only data
		t.Fatalf("read-only image mappings %d bytes", total)
	}
	if _, err := ImageMappings("0"); err == nil {
		t.Fatal("no error for a process that does not exist")
	}
}

// Paging out the test binary's read-only mappings lowers its resident file-backed memory, and the process keeps
// running (what it touches comes back).
func TestPageOutSelf(t *testing.T) {
	before := rssFileKiB(t)
	n, err := PageOutSelf()
	if err != nil {
		t.Skipf("MADV_PAGEOUT unavailable: %v", err)
	}
	after := rssFileKiB(t)
	t.Logf("advised %d KiB; RssFile %d -> %d KiB", n>>10, before, after)
	if after >= before {
		t.Fatalf("RssFile %d KiB after paging out, was %d KiB", after, before)
	}
}
