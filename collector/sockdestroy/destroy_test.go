package sockdestroy_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/fanoutdev/fanout/collector/enforce/enforcetest"
	"github.com/fanoutdev/fanout/collector/sockdestroy"
)

func TestMain(m *testing.M) {
	enforcetest.MaybeRunClient()
	os.Exit(m.Run())
}

// A client's open HTTP/2 connection (IPv4 and IPv6) is aborted by Destroy; a sibling cgroup's is not.
func TestDestroyByCgroupAndDestination(t *testing.T) {
	enforcetest.RequirePrivileged(t)
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			srv := enforcetest.StartServer(t, host)
			other := enforcetest.StartServer(t, host) // same host, other port: not an API destination
			_, pods := enforcetest.NodeCgroup(t)
			pod, ctr := enforcetest.PodCgroup(t, pods, "11111111-2222-3333-4444-555555555555", "app")
			_, sibCtr := enforcetest.PodCgroup(t, pods, "99999999-2222-3333-4444-555555555555", "app")

			victim := enforcetest.StartClient(t, ctr, enforcetest.ModeWatch, srv, 5*time.Second)
			sibling := enforcetest.StartClient(t, sibCtr, enforcetest.ModeWatch, srv, 5*time.Second)
			unrelated := enforcetest.StartClient(t, ctr, enforcetest.ModeWatch, other, 5*time.Second)
			for _, c := range []*enforcetest.Client{victim, sibling, unrelated} {
				c.WaitFor(t, "watching", 5*time.Second)
			}

			ids, err := sockdestroy.TreeCgroupIDs(pod)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != 2 {
				t.Fatalf("pod subtree ids = %v, want pod + container", ids)
			}
			start := time.Now()
			got, err := sockdestroy.Destroy(context.Background(), sockdestroy.Filter{
				CgroupIDs: ids,
				Dests:     []sockdestroy.Destination{{Addr: srv.Addr.Addr(), Port: srv.Addr.Port()}},
			})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			ctrID := enforcetest.CgroupID(t, ctr)
			if got[ctrID] != 1 || len(got) != 1 {
				t.Fatalf("destroyed = %v, want {%d: 1}", got, ctrID)
			}
			ev := victim.WaitFor(t, "err", 2*time.Second)
			lat := ev.At.Sub(start)
			t.Logf("%s: Destroy took %s; client saw %q %s after the call started", host, took, ev.Detail, lat)
			if lat > 100*time.Millisecond {
				t.Errorf("client error %s after destroy, want < 100ms", lat)
			}
			// The sibling pod and the same pod's connection to another destination stay up.
			for name, c := range map[string]*enforcetest.Client{"sibling": sibling, "unrelated": unrelated} {
				select {
				case ev := <-c.Events:
					t.Errorf("%s client disturbed: %+v", name, ev)
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
}

func TestEmptyFilterMatchesNothing(t *testing.T) {
	got, err := sockdestroy.Destroy(context.Background(), sockdestroy.Filter{CgroupIDs: []uint64{1}})
	if err != nil || len(got) != 0 {
		t.Fatalf("Destroy without destinations = %v, %v", got, err)
	}
}
