package blockmap

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestExemptValueMatchesSpec(t *testing.T) {
	if got, want := binary.Size(exemptValue{}), int(exemptSpec().ValueSize); got != want {
		t.Fatalf("exemptValue is %d bytes, blocked_exempt value %d", got, want)
	}
}

// Expiry: an exemption holds strictly before its deadline, 0 never expires, and expired ones match no pod.
func TestExemptionExpiry(t *testing.T) {
	const now = uint64(10 * time.Second)
	for _, c := range []struct {
		expires uint64
		active  bool
		rem     time.Duration
	}{
		{0, true, -1},
		{now + uint64(time.Second), true, time.Second},
		{now, false, 0},
		{now - 1, false, 0},
	} {
		x := Exemption{ExpiresBootNs: c.expires}
		if x.Active(now) != c.active || x.Remaining(now) != c.rem {
			t.Errorf("expires %d at %d: active %v remaining %s, want %v %s", c.expires, now, x.Active(now),
				x.Remaining(now), c.active, c.rem)
		}
	}
	set := NewExemptSet(map[uint64]Exemption{
		1: {PodUID: "aaaa-1", ExpiresBootNs: now + 1},
		2: {PodUID: "bbbb-2", ExpiresBootNs: now},     // expired
		3: {PodUID: "", ExpiresBootNs: 0},             // by cgroup id only, no expiry
		4: {PodUID: "cccc-4", ExpiresBootNs: now - 5}, // expired
	}, now)
	if set.Len() != 2 {
		t.Fatalf("set holds %d exemptions, want 2 (expired ones ignored)", set.Len())
	}
	for _, c := range []struct {
		id  uint64
		uid string
		key uint64
		ok  bool
	}{
		{1, "", 1, true},
		{99, "AAAA-1", 1, true}, // same pod, another cgroup id, UID case-insensitive
		{2, "bbbb-2", 0, false},
		{99, "cccc-4", 0, false},
		{3, "zzzz", 3, true},
		{99, "", 0, false},
	} {
		key, _, ok := set.Match(c.id, c.uid)
		if ok != c.ok || key != c.key {
			t.Errorf("Match(%d, %q) = %d, %v; want %d, %v", c.id, c.uid, key, ok, c.key, c.ok)
		}
	}
}
