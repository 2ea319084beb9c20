package probe

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/bpf"
)

// The per-socket design's cgroup slots: a cgroup's API sockets count into its slot; a cgroup that finds none free
// counts by cgroup id, exactly; a slot freed for a cgroup that is gone is taken by the next cgroup, and a socket of
// the old owner that lingers counts under its own cgroup, never the new owner's.
func TestSockopsSlotsTakenReleasedAndReused(t *testing.T) {
	requirePrivileged(t)
	mnt, err := cgroup2Mount()
	if err != nil {
		t.Fatal(err)
	}
	root, _ := makeCgroup(t, mnt, fmt.Sprintf("fanout-test-%d-slots", os.Getpid()))
	podA, idA := makeCgroup(t, root, "a")
	podB, idB := makeCgroup(t, root, "b")
	podC, idC := makeCgroup(t, root, "c")

	l := loopbackServer(t, echoConn)
	// Two slot indexes: 0 means "none", so exactly one cgroup can hold a slot.
	p := newTestProbe(t, Config{CgroupPath: root, Mode: ModeSockops, APISlots: 2})
	if p.Mode() != ModeSockops {
		t.Fatalf("mode %s", p.Mode())
	}
	if err := p.SetEndpoints([]Endpoint{addrPort(t, l.Addr().String())}); err != nil {
		t.Fatal(err)
	}
	slotOf := func(id uint64) uint32 {
		t.Helper()
		var s uint32
		err := p.sock.ApiCgroupSlots.Lookup(id, &s)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	slotTx := func(slot uint32) uint64 {
		t.Helper()
		raw, err := p.sock.ApiSlotValues.LookupBytes(slot)
		if err != nil {
			t.Fatal(err)
		}
		v, err := decodeSlot(raw)
		if err != nil {
			t.Fatal(err)
		}
		return v.Traffic.TxBytes
	}
	check := func(what string, id uint64, rts uint64) {
		t.Helper()
		time.Sleep(20 * time.Millisecond)
		cs, err := p.ReadCounters()
		if err != nil {
			t.Fatal(err)
		}
		hs, err := p.ReadHealth()
		if err != nil {
			t.Fatal(err)
		}
		c, h := cs[id], hs[id]
		if c.TxBytes != rts*echoSize || c.RxBytes != rts*echoSize || c.TxSegments != rts {
			t.Errorf("%s: tx %d rx %d requests %d, want %d, %d and %d", what, c.TxBytes, c.RxBytes, c.TxSegments,
				rts*echoSize, rts*echoSize, rts)
		}
		if h.Responses() != rts {
			t.Errorf("%s: %d responses in the latency histogram, want %d", what, h.Responses(), rts)
		}
	}

	a := startEchoClient(t, podA, l.Addr().String())
	a.exchange(10)
	if s := slotOf(idA); s != 1 {
		t.Fatalf("first cgroup with an API socket holds slot %d, want 1", s)
	}
	if tx := slotTx(1); tx != 10*echoSize {
		t.Errorf("slot 1 counted tx %d, want %d: the per-response path does not use the slot", tx, 10*echoSize)
	}
	check("slot holder", idA, 10)

	b := startEchoClient(t, podB, l.Addr().String())
	b.exchange(10)
	if s := slotOf(idB); s != 0 {
		t.Fatalf("second cgroup holds slot %d with none free", s)
	}
	check("cgroup without a slot", idB, 10)
	pr, err := p.Pressure()
	if err != nil {
		t.Fatal(err)
	}
	if sp := pr[len(pr)-1]; sp.Map != "api_cgroup_slots" || sp.Entries != 1 || sp.MaxEntries != 1 {
		t.Errorf("slot pressure %+v, want 1 of 1 held", sp)
	}

	// The agent forgets cgroup a (gone, as it sees it) while a's socket is still open: the slot is freed and the
	// next cgroup takes it.
	if err := p.Forget([]uint64{idA}); err != nil {
		t.Fatal(err)
	}
	if s := slotOf(idA); s != 0 {
		t.Fatalf("forgotten cgroup still holds slot %d", s)
	}
	c := startEchoClient(t, podC, l.Addr().String())
	c.exchange(10)
	if s := slotOf(idC); s != 1 {
		t.Fatalf("next cgroup holds slot %d, want the freed slot 1", s)
	}
	a.exchange(5) // the old owner's socket, still open
	check("new slot holder", idC, 10)
	check("old holder's lingering socket, counted from zero after Forget", idA, 5)
	b.exchange(5)
	check("cgroup without a slot", idB, 15)
	a.close()
	b.close()
	c.close()
}

// initSlots fills the free-slot queue only when no slot is held or free, so an agent restart over pinned maps in
// use hands no slot out twice.
func TestInitSlotsKeepsPinnedSlotsInUse(t *testing.T) {
	pin := testPinDir(t)
	p := newTestProbe(t, Config{PinDir: pin, Mode: ModeSockops, APISlots: 4})
	var slot uint32
	if err := p.sock.ApiFreeSlots.LookupAndDelete(nil, &slot); err != nil || slot != 1 {
		t.Fatalf("first free slot %d (%v), want 1", slot, err)
	}
	if err := p.sock.ApiCgroupSlots.Update(uint64(42), slot, ebpf.UpdateNoExist); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := New(Config{PinDir: pin, Mode: ModeSockops, APISlots: 4}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var free []uint32
	for q.sock.ApiFreeSlots.LookupAndDelete(nil, &slot) == nil {
		free = append(free, slot)
	}
	if fmt.Sprint(free) != "[2 3]" {
		t.Errorf("free slots after a restart %v, want [2 3] (slot 1 is held)", free)
	}
}

// decodeSlot reads the kernel's per-CPU buffer by hand: its layout must be the generated struct's, CPU after CPU.
func TestDecodeSlotMatchesStructLayout(t *testing.T) {
	if got := unsafe.Sizeof(bpf.SockopsApiSlot{}); got != 8*slotWords {
		t.Fatalf("struct api_slot is %d bytes, decodeSlot reads %d", got, 8*slotWords)
	}
	cpu := func(base uint64) []byte {
		v := bpf.SockopsApiSlot{LatencySumUs: base + 36}
		v.Traffic.TxPackets, v.Traffic.RxBytes, v.Traffic.TxDropped = base, base+3, base+7
		v.Latency[0], v.Latency[LatencyBuckets-1] = base+8, base+35
		return unsafe.Slice((*byte)(unsafe.Pointer(&v)), unsafe.Sizeof(v))
	}
	raw := append(cpu(100), cpu(1000)...)
	got, err := decodeSlot(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.Traffic.TxPackets != 1100 || got.Traffic.RxBytes != 1106 || got.Traffic.TxDropped != 1114 ||
		got.Latency[0] != 1116 || got.Latency[LatencyBuckets-1] != 1170 || got.LatencySumUs != 1172 {
		t.Errorf("decoded %+v", got)
	}
	if _, err := decodeSlot(raw[:100]); err == nil {
		t.Error("a truncated buffer decoded")
	}
}
