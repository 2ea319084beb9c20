package loopbackport

import (
	"net"
	"strconv"
	"testing"
)

// Ports picked in a row are distinct, below the ephemeral range and bindable: the race of handing the same port to
// two children that bind it later cannot happen within a process.
func TestPickDistinctBindablePortsBelowTheEphemeralRange(t *testing.T) {
	ephLo, ephHi := ephemeralRange()
	seen := map[int]bool{}
	for range 200 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d picked twice", p)
		}
		seen[p] = true
		if lo, hi := band(ephLo, ephHi); p < lo || p >= hi {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
		if ephLo-lowest >= minSpan && p >= ephLo {
			t.Fatalf("port %d in the ephemeral range %d-%d", p, ephLo, ephHi)
		}
	}
	// A port some process holds is skipped.
	held, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(held)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	next.Lock()
	next.port = held // the cursor points at the held port again
	next.Unlock()
	p, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	if p == held {
		t.Fatalf("picked port %d while it is bound", p)
	}
}

// The band lies below the ephemeral range when there is room, else above it.
func TestBand(t *testing.T) {
	for _, c := range []struct{ ephLo, ephHi, lo, hi int }{
		{32768, 60999, lowest, 32768}, // Linux's default
		{1024, 60999, 61000, 65536},   // a low start: above the range
		{1024, 65000, lowest, 65536},  // no room either side
	} {
		if lo, hi := band(c.ephLo, c.ephHi); lo != c.lo || hi != c.hi {
			t.Errorf("band(%d, %d) = [%d, %d), want [%d, %d)", c.ephLo, c.ephHi, lo, hi, c.lo, c.hi)
		}
	}
}
