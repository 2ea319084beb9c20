package remediate

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseWorkload(t *testing.T) {
	w, err := ParseWorkload("DaemonSet/kube-system/kube-proxy")
	if err != nil || w != (Workload{"DaemonSet", "kube-system", "kube-proxy"}) || w.String() != "DaemonSet/kube-system/kube-proxy" {
		t.Fatalf("got %+v %v", w, err)
	}
	for _, bad := range []string{"", "Deployment/web", "Deployment//web", "Deployment/a/b/c", "/a/b"} {
		if _, err := ParseWorkload(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if _, err := ParseWorkload("Pod/default/web"); !errors.Is(err, ErrUnsupportedKind) {
		t.Errorf("Pod: want ErrUnsupportedKind, got %v", err)
	}
}

func TestRestoreValue(t *testing.T) {
	for _, tc := range []struct{ prev, cur, want string }{
		{`null`, `{"fanout.dev/paused":"true"}`, `null`},
		{`{"os":"linux"}`, `{"os":"linux","fanout.dev/paused":"true"}`, `{"fanout.dev/paused":null,"os":"linux"}`},
		{`{"os":"linux"}`, `{"fanout.dev/paused":"true"}`, `{"fanout.dev/paused":null,"os":"linux"}`},
		{`3`, `0`, `3`},
		{`3`, `null`, `3`},
	} {
		prev, _ := decodeValue([]byte(tc.prev))
		cur, _ := decodeValue([]byte(tc.cur))
		got, _ := json.Marshal(restoreValue(prev, cur))
		if string(got) != tc.want {
			t.Errorf("restore(%s, %s) = %s, want %s", tc.prev, tc.cur, got, tc.want)
		}
	}
}
