package fleet

import "testing"

func TestRecorderBucketsPerSecond(t *testing.T) {
	r := NewRecorder()
	r.Add("DaemonSet/a/x", Sample{T: 100.98, OK: 3})            // covers ~[99.98, 100.98): second 100
	r.Add("DaemonSet/a/x", Sample{T: 101.02, OK: 2, Denied: 1}) // another pod, same second
	r.Add("DaemonSet/a/x", Sample{T: 102.0, Err: 4, LastErr: "boom"})
	r.Add("Deployment/b/y", Sample{T: 50.7, OK: 1, Items: 10})
	if ws := r.Workloads(); len(ws) != 2 || ws[0] != "DaemonSet/a/x" {
		t.Fatalf("workloads %v", ws)
	}
	s := r.Series("DaemonSet/a/x")
	if len(s) != 2 || s[0].Sec != 100 || s[0].OK != 5 || s[0].Denied != 1 || s[1].Sec != 101 || s[1].Err != 4 {
		t.Fatalf("series %+v", s)
	}
	if got := s[0].Attempts(); got != 6 {
		t.Fatalf("attempts %d", got)
	}
	if sum := r.Sum("DaemonSet/a/x", 101, 102); sum.Err != 4 || sum.OK != 0 {
		t.Fatalf("sum %+v", sum)
	}
	if r.LastErr("DaemonSet/a/x") != "boom" {
		t.Fatalf("last err %q", r.LastErr("DaemonSet/a/x"))
	}
}
