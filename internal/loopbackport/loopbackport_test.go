package loopbackport

import (
	"net"
	"strconv"
	"testing"
)

// Ports picked in a row are distinct, below the ephemeral range and bindable: the race of handing the same port to
// two children that bind it later cannot happen within a process.
func TestPickDistinctBindablePortsBelowTheEphemeralRange(t *testing.T) {
	eph := ephemeralStart()
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
		if eph > lowest+1000 && (p < lowest || p >= eph) {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, eph)
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
