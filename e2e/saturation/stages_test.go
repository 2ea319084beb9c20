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
	// The plateau (60 at 2 clients) and the load at the breach (40) bound the measured saturation.
	st[1].Requests = 60
	st = append(st, Stage{Clients: 4, GetP99: 2 * time.Second, Requests: 90})
	if req, _ := Peak(st); req != 60 {
		t.Fatalf("peak %g: want 60 (the stages up to the first breach)", req)
	}
	if !WithinBand(29, 40, 60, 0.3) || !WithinBand(77, 40, 60, 0.3) || WithinBand(27, 40, 60, 0.3) || WithinBand(79, 40, 60, 0.3) || WithinBand(50, 0, 60, 0.3) {
		t.Fatal("WithinBand")
	}
	if !Within(35, 40, 0.3) || Within(27, 40, 0.3) || Within(53, 40, 0.3) || Within(1, 0, 0.3) {
		t.Fatal("Within")
	}
}
