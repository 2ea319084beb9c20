package enforce

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	apiramp "github.com/fanoutdev/fanout/api/ramp"
	"github.com/fanoutdev/fanout/collector/blockmap"
)

// The state machine over fakeNode (fake_test.go): no root, no kernel, clocks moved by the test.

const (
	wlWeb   = "Deployment/default/web"
	wlOther = "Deployment/default/other"
	wlBatch = "Deployment/default/batch"
)

// addPod creates pod i (cgroup id 100+i) and, unless workload is "", tells the resolver its workload.
func addPod(n *fakeNode, res *mapResolver, i int, workload string) podDir {
	if workload != "" {
		res.set(fakeUID(i), workload)
	}
	return n.addPod(fakeUID(i), uint64(100+i))
}

func apply(t *testing.T, e *Enforcer, d Directive) {
	t.Helper()
	if err := e.Apply(d); err != nil {
		t.Fatalf("apply %s %s epoch %d: %v", d.Action, d.Workload, d.Epoch, err)
	}
}

func wantBlocked(t *testing.T, n *fakeNode, what string, pods ...podDir) {
	t.Helper()
	var want []uint64
	for _, pd := range pods {
		want = append(want, pd.id)
	}
	slices.Sort(want)
	if got := n.blockedIDs(); !slices.Equal(got, want) {
		t.Fatalf("%s: block list %v, want %v", what, got, want)
	}
}

func wantReport(t *testing.T, e *Enforcer, what string, want ...BlockedWorkload) {
	t.Helper()
	if got := e.Blocked(); !slices.Equal(got, want) {
		t.Fatalf("%s: Blocked() = %+v, want %+v", what, got, want)
	}
}

func refusedCount(e *Enforcer, workload, reason string) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refused[[2]string{workload, reason}]
}

// A block puts every pod cgroup of the workload in the block list with the directive's TTL (default, capped) as a
// kernel-side deadline, records the directive, tears down the pods' API connections; the sweep at the deadline
// removes it all, not a nanosecond before.
func TestMachineBlockHoldsUntilTTL(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ttl, hold time.Duration
	}{
		{"directive ttl", 30 * time.Second, 30 * time.Second},
		{"default ttl", 0, 10 * time.Minute},
		{"capped at max ttl", 3 * time.Hour, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, res := newFakeNode(), newMapResolver()
			web1, web2 := addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb)
			oth := addPod(n, res, 3, wlOther)
			e := startFake(t, n, res, Config{}, "")
			t0 := n.BootNow()
			apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: tc.ttl, Epoch: 7})

			until := t0 + uint64(tc.hold)
			want := blockmap.Entry{ExpiresBootNs: until, WorkloadHash: blockmap.WorkloadHash(wlWeb)}
			if got := n.entries(); !maps.Equal(got, map[uint64]blockmap.Entry{web1.id: want, web2.id: want}) {
				t.Fatalf("block list %+v, want pods %d and %d until %d", got, web1.id, web2.id, until)
			}
			if r, ok := n.record(wlWeb); !ok || r != (blockmap.WorkloadRecord{ExpiresBootNs: until, Epoch: 7}) {
				t.Fatalf("workload record %+v (present %v), want expiry %d", r, ok, until)
			}
			if a, b, c := n.openSockets(web1.id), n.openSockets(web2.id), n.openSockets(oth.id); a != 0 || b != 0 || c != 1 {
				t.Fatalf("open API sockets web %d %d, other %d: want the blocked pods' torn down, the other's kept", a, b, c)
			}
			wantReport(t, e, "blocked", BlockedWorkload{Workload: wlWeb, Epoch: 7, Pods: 2})

			n.advance(tc.hold - 1)
			e.sweep()
			wantBlocked(t, n, "1ns before the TTL", web1, web2)
			n.advance(1)
			e.sweep()
			wantBlocked(t, n, "at the TTL")
			if _, ok := n.record(wlWeb); ok {
				t.Fatal("workload record kept after the TTL")
			}
			wantReport(t, e, "after the TTL")
			if n.active {
				t.Fatal("blocked_active still set with an empty block list")
			}
		})
	}
}

// A release re-admits all the workload's pods on this node at once, at the node's place in the fleet-wide ramp
// (api/ramp) counted from the release's start, and not before; new pods of a releasing workload are not blocked.
func TestMachineReleaseAtNodesPlaceInRamp(t *testing.T) {
	rmp := Ramp{Duration: 2 * time.Minute, Steps: 4, Jitter: 5 * time.Second}
	defRamp := Ramp{Duration: time.Minute, Steps: 2}
	nodeAt := func(r Ramp, ok func(step uint) bool) string {
		s := apiramp.Schedule{Duration: r.Duration, Steps: uint(r.Steps), Jitter: r.Jitter}
		for i := 0; ; i++ {
			if node := fmt.Sprintf("node-%d", i); ok(s.Step(node)) {
				return node
			}
		}
	}
	late := nodeAt(rmp, func(k uint) bool { return k >= 2 })
	for _, tc := range []struct {
		name      string
		node      string
		ramp      Ramp          // in the directive
		use       Ramp          // the ramp that applies
		issuedAgo time.Duration // how long before this node got the release it was issued
	}{
		{"late step", late, rmp, rmp, 0},
		{"first step", nodeAt(rmp, func(k uint) bool { return k == 0 }), rmp, rmp, 0},
		{"issued 40s ago", late, rmp, rmp, 40 * time.Second},
		{"issued ahead of this node's clock", late, rmp, rmp, -time.Hour},
		{"ramp already over", late, rmp, rmp, 10 * time.Minute},
		{"no ramp named: the default ramp", nodeAt(defRamp, func(k uint) bool { return k == 1 }), Ramp{}, defRamp, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, res := newFakeNode(), newMapResolver()
			pods := []podDir{addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb), addPod(n, res, 3, wlWeb)}
			e := startFake(t, n, res, Config{Node: tc.node, DefaultRamp: defRamp}, "")
			apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Hour, Epoch: 5})
			expires := n.BootNow() + uint64(time.Hour)
			n.advance(time.Minute)

			wall, t0 := n.Now(), n.BootNow()
			start, from := wall.Add(-tc.issuedAgo), wall.Add(-max(tc.issuedAgo, 0)) // a start ahead counts from receipt
			wait := max(apiramp.Schedule{Start: from, Duration: tc.use.Duration, Steps: uint(tc.use.Steps),
				Jitter: tc.use.Jitter}.ReleaseTime(tc.node).Sub(wall), 0)
			if tc.name == "late step" && wait < 60*time.Second {
				t.Fatalf("node %s waits %s: want a node late in the 2m ramp", tc.node, wait)
			}
			apply(t, e, Directive{Action: ActionRelease, Workload: wlWeb, Ramp: tc.ramp, Epoch: 5, Issued: start})
			if wait == 0 {
				wantBlocked(t, n, "release at once")
				wantReport(t, e, "release at once")
				return
			}
			want := blockmap.WorkloadRecord{ExpiresBootNs: expires, RampEndBootNs: t0 + uint64(wait), Flags: blockmap.FlagReleasing, Epoch: 5}
			if r, _ := n.record(wlWeb); r != want {
				t.Fatalf("record %+v, want %+v", r, want)
			}
			wantReport(t, e, "releasing", BlockedWorkload{Workload: wlWeb, Epoch: 5, Pods: 3, Releasing: true})
			late := addPod(n, res, 4, wlWeb)
			e.podCreated(late)
			// A repeated release changes nothing.
			apply(t, e, Directive{Action: ActionRelease, Workload: wlWeb, Ramp: Ramp{Steps: 1}, Epoch: 5})

			n.advance(wait - 1)
			e.sweep()
			wantBlocked(t, n, fmt.Sprintf("1ns before the node's place (%s)", wait), pods...)
			n.advance(1)
			e.sweep()
			wantBlocked(t, n, "at the node's place")
			if _, ok := n.record(wlWeb); ok {
				t.Fatal("workload record kept after the release")
			}
			wantReport(t, e, "released")
		})
	}
}

// Directives older than what was applied are refused with ErrStale and change nothing; a new trip is applied.
func TestMachineStaleDirectives(t *testing.T) {
	block := func(epoch uint64) Directive {
		return Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute, Epoch: epoch}
	}
	release := func(epoch uint64) Directive {
		return Directive{Action: ActionRelease, Workload: wlWeb, Ramp: Ramp{Steps: 1}, Epoch: epoch} // at once
	}
	for _, tc := range []struct {
		name    string
		before  []Directive
		stale   Directive
		blocked int
	}{
		{"block of the released epoch", []Directive{block(5), release(5)}, block(5), 0},
		{"block of an older epoch", []Directive{block(5), release(5)}, block(4), 0},
		{"release older than the block in force", []Directive{block(5), release(5), block(6)}, release(5), 2},
		{"block of an epoch released before it blocked here", []Directive{release(9)}, block(9), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, res := newFakeNode(), newMapResolver()
			web1, web2 := addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb)
			e := startFake(t, n, res, Config{}, "")
			for _, d := range tc.before {
				apply(t, e, d)
			}
			rec, _ := n.record(wlWeb)
			err := e.Apply(tc.stale)
			if !errors.Is(err, ErrStale) {
				t.Fatalf("err = %v, want ErrStale", err)
			}
			if got := len(n.blockedIDs()); got != tc.blocked {
				t.Fatalf("%d pods blocked after the stale directive, want %d", got, tc.blocked)
			}
			if r, _ := n.record(wlWeb); r != rec {
				t.Fatalf("record changed by the stale directive: %+v, was %+v", r, rec)
			}
			if b, ok := blockedOf(e, wlWeb); ok && b.Releasing {
				t.Fatal("stale release started a ramp")
			}
			apply(t, e, block(100))
			wantBlocked(t, n, "new trip", web1, web2)
		})
	}
}

// Protected workloads are refused with ErrProtected and nothing is written; critical-priority pods and the agent's
// own pod are left out of their workload's block (refused once per pod), their siblings blocked.
func TestMachineProtectedRefused(t *testing.T) {
	const proxy, app = "DaemonSet/kube-system/kube-proxy", "Deployment/prod/app"
	for _, tc := range []struct {
		name     string
		workload string
		priority string // of pod 1
		self     bool   // pod 1 is the agent's own
		wantErr  error
		reason   string
		blocked  []int // pods blocked
	}{
		{"protected workload", proxy, "", false, ErrProtected, ReasonProtected, nil},
		{"system-node-critical pod", app, "system-node-critical", false, nil, ReasonCritical, []int{2}},
		{"system-cluster-critical pod", app, "system-cluster-critical", false, nil, ReasonCritical, []int{2}},
		{"agent's own pod", app, "", true, nil, ReasonSelf, []int{2}},
		{"ordinary priority", app, "high", false, nil, "", []int{1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, res := newFakeNode(), newMapResolver()
			pods := []podDir{addPod(n, res, 1, tc.workload), addPod(n, res, 2, tc.workload)}
			res.priority[fakeUID(1)] = tc.priority
			self := ""
			if tc.self {
				self = fakeUID(1)
			}
			e := startFake(t, n, res, Config{}, self)
			for range 2 { // the renewal refuses nothing twice
				err := e.Apply(Directive{Action: ActionBlock, Workload: tc.workload, TTL: time.Minute})
				if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			}
			var want []podDir
			for _, i := range tc.blocked {
				want = append(want, pods[i-1])
			}
			wantBlocked(t, n, "after the block", want...)
			if _, ok := n.record(tc.workload); ok != (tc.wantErr == nil) {
				t.Fatalf("workload record present = %v, want %v", ok, tc.wantErr == nil)
			}
			if tc.reason == "" {
				return
			}
			wantN := 1.0
			if tc.wantErr != nil {
				wantN = 2 // every refused directive counts
			}
			if got := refusedCount(e, tc.workload, tc.reason); got != wantN {
				t.Fatalf("refusals{%s} = %v, want %v", tc.reason, got, wantN)
			}
		})
	}
}

// A new pod of a blocked workload is blocked when its cgroup appears, with the workload's deadline; pods of other
// workloads are not.
func TestMachineNewPodOfBlockedWorkload(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	web1 := addPod(n, res, 1, wlWeb)
	e := startFake(t, n, res, Config{}, "")
	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute, Epoch: 2})
	until := n.BootNow() + uint64(time.Minute)
	n.advance(10 * time.Second)

	web2, oth := addPod(n, res, 2, wlWeb), addPod(n, res, 3, wlOther)
	e.podCreated(web2)
	e.podCreated(oth)
	wantBlocked(t, n, "after new pods", web1, web2)
	if en := n.entries()[web2.id]; en != (blockmap.Entry{ExpiresBootNs: until, WorkloadHash: blockmap.WorkloadHash(wlWeb)}) {
		t.Fatalf("new pod's entry %+v: want the workload's deadline %d", en, until)
	}
	e.podCreated(web2) // the watcher and a scan may both report it
	wantReport(t, e, "after new pods", BlockedWorkload{Workload: wlWeb, Epoch: 2, Pods: 2})
}

// A pod whose workload is unknown when its cgroup appears is pending, not blocked; it is blocked once its identity
// arrives, on the pod add event or on the next sweep.
func TestMachinePendingPodResolvedLater(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resolve func(e *Enforcer, uid string)
	}{
		{"pod add event", func(e *Enforcer, uid string) { e.PodAdded(uid) }},
		{"sweep", func(e *Enforcer, _ string) { e.sweep() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, res := newFakeNode(), newMapResolver()
			web1 := addPod(n, res, 1, wlWeb)
			early := addPod(n, res, 2, "") // seen by the block's scan before its identity
			e := startFake(t, n, res, Config{}, "")
			apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute})
			late := addPod(n, res, 3, "") // appears after the block
			e.podCreated(late)
			e.PodAdded(fakeUID(3)) // identity still unknown: nothing
			e.sweep()
			wantBlocked(t, n, "identities unknown", web1)

			res.set(fakeUID(2), wlWeb)
			res.set(fakeUID(3), wlWeb)
			tc.resolve(e, fakeUID(2))
			tc.resolve(e, fakeUID(3))
			wantBlocked(t, n, "identities known", web1, early, late)
			e.mu.Lock()
			pending := len(e.pending)
			e.mu.Unlock()
			if pending != 0 {
				t.Fatalf("%d pods still pending", pending)
			}
		})
	}
}

// Break-glass (`fanoutctl node unblock`) sticks: block directives and new-pod checks leave an exempt pod unblocked
// and fill in its workload; when the exemption expires the sweep removes it and blocks the pod again; an exemption
// granted while the agent runs lifts the pod from the workload's state; `fanoutctl node block` (which clears the
// exemption) has the agent hold the pod for its workload again.
func TestMachineBreakGlassExemption(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	web1, web2, web3 := addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb), addPod(n, res, 3, wlWeb)
	e := startFake(t, n, res, Config{}, "")
	now := n.BootNow()
	n.PutExempt(web1.id, blockmap.Exemption{PodUID: fakeUID(1), ExpiresBootNs: now + uint64(30*time.Second)})
	const byUID = 999 // an exemption recorded under another cgroup id of the pod: matched by pod UID
	n.PutExempt(byUID, blockmap.Exemption{PodUID: strings.ToUpper(fakeUID(4)), ExpiresBootNs: now + uint64(time.Hour)})

	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: 10 * time.Minute, Epoch: 3})
	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: 10 * time.Minute, Epoch: 4}) // a new trip too
	wantBlocked(t, n, "block with pod 1 exempt", web2, web3)
	if x, _ := n.exemption(web1.id); x.Workload != wlWeb || x.PodUID != fakeUID(1) {
		t.Fatalf("exemption %+v: want its workload filled in", x)
	}
	web4 := addPod(n, res, 4, wlWeb)
	e.podCreated(web4)
	wantBlocked(t, n, "new pod exempt by UID", web2, web3)
	wantReport(t, e, "two exempt", BlockedWorkload{Workload: wlWeb, Epoch: 4, Pods: 2, Exempt: 2})

	n.advance(30*time.Second - 1)
	e.sweep()
	wantBlocked(t, n, "1ns before the exemption expires", web2, web3)
	n.advance(1)
	e.sweep()
	wantBlocked(t, n, "exemption expired", web1, web2, web3)
	if _, ok := n.exemption(web1.id); ok {
		t.Fatal("expired exemption kept")
	}
	if x, ok := n.exemption(byUID); !ok || x.Workload != wlWeb {
		t.Fatalf("the other exemption %+v (present %v): want it kept with its workload", x, ok)
	}

	// `fanoutctl node unblock` of pod 2 while the agent runs: entry deleted, exemption recorded.
	n.Delete(web2.id)
	n.PutExempt(web2.id, blockmap.Exemption{PodUID: fakeUID(2), Workload: wlWeb, ExpiresBootNs: n.BootNow() + uint64(time.Minute)})
	e.sweep()
	wantBlocked(t, n, "pod 2 unblocked by hand", web1, web3)
	wantReport(t, e, "pod 2 exempt", BlockedWorkload{Workload: wlWeb, Epoch: 4, Pods: 2, Exempt: 2})

	// `fanoutctl node block` of pod 4: exemption cleared, a break-glass entry; the agent holds it for its workload.
	n.DeleteExempt(byUID)
	n.Put(web4.id, blockmap.Entry{Flags: blockmap.FlagBreakGlass})
	e.sweep()
	wantBlocked(t, n, "pod 4 blocked by hand", web1, web3, web4)
	if en := n.entries()[web4.id]; en.WorkloadHash != blockmap.WorkloadHash(wlWeb) || en.Flags != 0 || en.ExpiresBootNs == 0 {
		t.Fatalf("pod 4 entry %+v: want the workload's block", en)
	}
	wantReport(t, e, "pod 4 held for the workload", BlockedWorkload{Workload: wlWeb, Epoch: 4, Pods: 3, Exempt: 1})
}

// A restarted agent restores from the pinned maps: blocks keep their deadlines, a release ramp resumes and ends at
// the node's place (all its pods at once, none earlier), entries of gone pods and expired records are removed, pods
// that appeared while no agent ran are blocked (unless exempt by break-glass), entries written by `fanoutctl node`
// are kept, and restored pods' API connections are torn down again.
func TestMachineRestoreAfterRestart(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	web1, web2, web3 := addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb), addPod(n, res, 3, wlWeb)
	batch := []podDir{addPod(n, res, 5, wlBatch), addPod(n, res, 6, wlBatch)}
	node := "" // a node released late in the 2m ramp
	for i := 0; node == "" || apiramp.Offset(node, 2*time.Minute, 4, 0) < time.Minute; i++ {
		node = fmt.Sprintf("node-%d", i)
	}
	cfg := Config{Node: node}
	first := startFake(t, n, res, cfg, "")
	apply(t, first, Directive{Action: ActionBlock, Workload: wlWeb, TTL: 10 * time.Minute, Epoch: 3})
	webUntil := n.BootNow() + uint64(10*time.Minute)
	apply(t, first, Directive{Action: ActionBlock, Workload: wlBatch, TTL: 10 * time.Minute, Epoch: 2})
	apply(t, first, Directive{Action: ActionRelease, Workload: wlBatch, Ramp: Ramp{Duration: 2 * time.Minute, Steps: 4},
		Epoch: 2, Issued: n.Now()})
	rec, _ := n.record(wlBatch)
	rampEnd := rec.RampEndBootNs
	// Left by others: a stale record with an entry, a `fanoutctl node block` of a pod of no directive.
	n.PutWorkload("Deployment/default/old", blockmap.WorkloadRecord{ExpiresBootNs: n.BootNow() + 1})
	n.Put(150, blockmap.Entry{ExpiresBootNs: n.BootNow() + 1, WorkloadHash: blockmap.WorkloadHash("Deployment/default/old")})
	manual := n.addPod(fakeUID(60), 160)
	n.Put(manual.id, blockmap.Entry{ExpiresBootNs: n.BootNow() + uint64(time.Hour), Flags: blockmap.FlagBreakGlass})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	// While no agent runs: pod 2 goes, pod 4 appears, pod 1 is unblocked by hand, pod 3 opens a connection.
	n.removePod(web2)
	web4 := addPod(n, res, 4, wlWeb)
	n.Delete(web1.id)
	n.PutExempt(web1.id, blockmap.Exemption{PodUID: fakeUID(1), Workload: wlWeb, ExpiresBootNs: n.BootNow() + uint64(time.Hour)})
	n.mu.Lock()
	n.sockets[containerOf(web3.id)] = 1
	n.mu.Unlock()
	n.advance(10 * time.Second)

	second := startFake(t, n, res, cfg, "")
	wantBlocked(t, n, "restored", web3, web4, batch[0], batch[1], manual)
	wantReport(t, second, "restored",
		BlockedWorkload{Workload: wlBatch, Epoch: 2, Pods: len(batch), Releasing: true},
		BlockedWorkload{Workload: wlWeb, Epoch: 3, Pods: 2, Exempt: 1})
	// The trip's epoch outlives the restart: a late block of the released trip does not cancel the resumed ramp.
	if err := second.Apply(Directive{Action: ActionBlock, Workload: wlBatch, TTL: 10 * time.Minute, Epoch: 2}); !errors.Is(err, ErrStale) {
		t.Fatalf("late block of the released epoch after a restart: %v, want ErrStale", err)
	}
	if n.openSockets(web3.id) != 0 {
		t.Fatal("restored pod's API connection kept")
	}
	if _, ok := n.record("Deployment/default/old"); ok {
		t.Fatal("expired workload record kept")
	}
	if en := n.entries()[web4.id]; en.ExpiresBootNs != webUntil {
		t.Fatalf("pod created while no agent ran blocked until %d, want the restored deadline %d", en.ExpiresBootNs, webUntil)
	}

	now := n.BootNow()
	if rampEnd <= now {
		t.Fatalf("ramp ends at %d, restart at %d: want a ramp under way", rampEnd, now)
	}
	n.advance(time.Duration(rampEnd-now) - 1)
	second.sweep()
	wantBlocked(t, n, "1ns before the end of the resumed ramp", web3, web4, batch[0], batch[1], manual)
	n.advance(1)
	second.sweep()
	wantBlocked(t, n, "at the end of the resumed ramp", web3, web4, manual)
	wantReport(t, second, "released", BlockedWorkload{Workload: wlWeb, Epoch: 3, Pods: 2, Exempt: 1})
	n.advance(time.Duration(webUntil - n.BootNow()))
	second.sweep()
	wantBlocked(t, n, "at the restored TTL", manual)
}

// A full block list fails the pods it cannot hold: the block returns an error naming the workload and wrapping the
// map's, and everything else lands (the pods that fit, their connections torn down, the workload record) or stays
// (other workloads' blocks); a renewal once there is room blocks the rest.
func TestMachineFullBlockList(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	oth := addPod(n, res, 9, wlOther)
	web := []podDir{addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb), addPod(n, res, 3, wlWeb)}
	e := startFake(t, n, res, Config{}, "")
	apply(t, e, Directive{Action: ActionBlock, Workload: wlOther, TTL: time.Minute})
	othEntry := n.entries()[oth.id]
	n.capacity = 3

	err := e.Apply(Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute, Epoch: 8})
	if !errors.Is(err, errFull) || !strings.Contains(err.Error(), "block "+wlWeb) {
		t.Fatalf("err = %v, want the block list's error wrapped with the workload", err)
	}
	entries := n.entries()
	if len(entries) != 3 || entries[oth.id] != othEntry {
		t.Fatalf("block list %+v: want the other workload's entry kept and 2 pods of %s", entries, wlWeb)
	}
	for _, pd := range web {
		_, blocked := entries[pd.id]
		if open := n.openSockets(pd.id); blocked == (open != 0) {
			t.Fatalf("pod %d blocked %v with %d API connections: want connections torn down exactly for blocked pods",
				pd.id, blocked, open)
		}
	}
	if _, ok := n.record(wlWeb); !ok {
		t.Fatal("workload record lost")
	}
	wantReport(t, e, "partial block",
		BlockedWorkload{Workload: wlOther, Pods: 1},
		BlockedWorkload{Workload: wlWeb, Epoch: 8, Pods: 2})

	n.capacity = 0
	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute, Epoch: 8})
	wantBlocked(t, n, "renewal with room", oth, web[0], web[1], web[2])
}

// A removed pod leaves the block list and its exemption goes: on the watcher's event, or when the sweep finds its
// cgroup gone (removed before it was watched). The workload stays blocked.
func TestMachineRemovedPodForgotten(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	web1, web2, web3 := addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb), addPod(n, res, 3, wlWeb)
	e := startFake(t, n, res, Config{}, "")
	n.PutExempt(web3.id, blockmap.Exemption{PodUID: fakeUID(3)})
	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute})
	wantBlocked(t, n, "blocked", web1, web2)

	n.removePod(web1)
	e.podRemoved(web1.path)
	wantBlocked(t, n, "after the removal event", web2)
	n.removePod(web2)
	n.removePod(web3)
	e.sweep()
	wantBlocked(t, n, "after the sweep")
	if _, ok := n.exemption(web3.id); ok {
		t.Fatal("exemption of a removed pod kept")
	}
	if _, ok := n.record(wlWeb); !ok {
		t.Fatal("workload record lost with its pods")
	}
	wantReport(t, e, "no pods left", BlockedWorkload{Workload: wlWeb})
}

// The sweep adopts entries written by others (labelled for the metrics), removes expired ones and clears
// blocked_active once the list is empty.
func TestMachineAdoptAndCompact(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	e := startFake(t, n, res, Config{}, "")
	now := n.BootNow()
	n.Put(50, blockmap.Entry{ExpiresBootNs: now + uint64(time.Minute), Flags: blockmap.FlagBreakGlass})
	n.Put(51, blockmap.Entry{ExpiresBootNs: now})
	e.sweep()
	if got := n.blockedIDs(); !slices.Equal(got, []uint64{50}) {
		t.Fatalf("block list %v, want the expired entry removed and the live one kept", got)
	}
	e.mu.Lock()
	label := e.names[50]
	e.mu.Unlock()
	if label != "Unknown//cgroup-50" {
		t.Fatalf("label of the adopted entry %q", label)
	}
	if !n.active {
		t.Fatal("blocked_active cleared with an entry in force")
	}
	n.advance(time.Minute)
	e.sweep()
	if len(n.blockedIDs()) != 0 || n.active {
		t.Fatalf("after expiry: block list %v, active %v: want empty and clear", n.blockedIDs(), n.active)
	}
}

// The Enforcer's metrics come from the fake kernel like from the real one.
func TestMachineMetrics(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	web1, web2 := addPod(n, res, 1, wlWeb), addPod(n, res, 2, wlWeb)
	e := startFake(t, n, res, Config{}, "")
	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute})
	if err := e.Apply(Directive{Action: ActionBlock, Workload: "DaemonSet/kube-system/kube-proxy"}); !errors.Is(err, ErrProtected) {
		t.Fatal(err)
	}
	n.denied[web1.id], n.denied[web2.id], n.denied[77] = 3, 4, 1
	want := `
# HELP fanout_agent_blocks_active Pod cgroups of the workload currently blocked from the API server on this node.
# TYPE fanout_agent_blocks_active gauge
fanout_agent_blocks_active{workload="Deployment/default/web"} 2
# HELP fanout_agent_block_refused_total Block attempts refused because the workload or pod is protected.
# TYPE fanout_agent_block_refused_total counter
fanout_agent_block_refused_total{reason="protected",workload="DaemonSet/kube-system/kube-proxy"} 1
# HELP fanout_agent_connects_denied_total connect() calls to the API server denied (EPERM) by the kill switch.
# TYPE fanout_agent_connects_denied_total counter
fanout_agent_connects_denied_total{workload="Deployment/default/web"} 7
fanout_agent_connects_denied_total{workload="Unknown//cgroup-77"} 1
# HELP fanout_agent_sockets_destroyed_total Established API-server connections torn down by the kill switch.
# TYPE fanout_agent_sockets_destroyed_total counter
fanout_agent_sockets_destroyed_total{workload="Deployment/default/web"} 2
`
	if err := testutil.CollectAndCompare(e, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// newEnforcer closes the host it was given when it fails, and Close closes it once.
func TestMachineHostClosed(t *testing.T) {
	n := newFakeNode()
	if _, err := newEnforcer(Config{}, Deps{Workloads: newMapResolver()}, n.host(""), discard()); err == nil {
		t.Fatal("newEnforcer without pin dir: want an error")
	}
	if n.closed != 1 {
		t.Fatalf("host closed %d times after a failed construction, want 1", n.closed)
	}
	n = newFakeNode()
	e := startFake(t, n, newMapResolver(), Config{}, "")
	for range 2 {
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n.closed != 1 {
		t.Fatalf("host closed %d times by two Close calls, want 1", n.closed)
	}
}

// The sweep's backstop check for pods removed without a watcher event stats only blocked workloads' pods each sweep,
// and every pod of the node only every fullCheckEvery sweeps: with nothing blocked, a node's pods cost no stat 4
// times a second.
func TestMachineSweepStatsOnlyBlockedPods(t *testing.T) {
	n, res := newFakeNode(), newMapResolver()
	for i := range 10 {
		addPod(n, res, i+1, wlBatch)
	}
	web := addPod(n, res, 20, wlWeb)
	e := startFake(t, n, res, Config{}, "")
	calls := func() int { n.mu.Lock(); defer n.mu.Unlock(); return n.existsCalls }
	for e.sweeps%fullCheckEvery != 0 {
		e.sweep()
	}
	base := calls()
	for range fullCheckEvery - 1 {
		e.sweep()
	}
	if got := calls() - base; got != 0 {
		t.Fatalf("%d pod stats in %d sweeps with nothing blocked, want 0", got, fullCheckEvery-1)
	}
	e.sweep()
	if got := calls() - base; got != 11 {
		t.Fatalf("full check: %d pod stats, want 11", got)
	}
	apply(t, e, Directive{Action: ActionBlock, Workload: wlWeb, TTL: time.Minute, Epoch: 1})
	base = calls()
	e.sweep()
	if got := calls() - base; got != 1 {
		t.Fatalf("%d pod stats in a sweep with one blocked pod (%s), want 1", got, web.path)
	}
}
