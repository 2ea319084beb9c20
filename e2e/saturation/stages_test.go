package saturation

import (
	"testing"
	"time"
)

func TestSaturationAndWithin(t *testing.T) {
	st := []Stage{{Clients: 1, GetP99: 20 * time.Millisecond}, {Clients: 2, GetP99: 400 * time.Millisecond}, {Clients: 3, GetP99: 1500 * time.Millisecond, Requests: 40}}
	s, err := Saturation(st)
	if err != nil || s.Clients != 3 {
		t.Fatalf("saturation %+v, %v", s, err)
	}
	if _, err := Saturation(st[:2]); err == nil {
		t.Fatal("no breach must be an error")
	}
	if _, err := Saturation(st[2:]); err == nil {
		t.Fatal("a breach at the first stage must be an error")
	}
	if !Within(35, 40, 0.3) || Within(27, 40, 0.3) || Within(53, 40, 0.3) || Within(1, 0, 0.3) {
		t.Fatal("Within")
	}
}
