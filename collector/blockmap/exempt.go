package blockmap

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/fanoutdev/fanout/collector/pindir"
)

// MaxExempt bounds the break-glass exemptions of one instance; maxPodUID bounds a stored pod UID (36 bytes today).
const (
	MaxExempt = 1024
	maxPodUID = 64
)

// Exemption is one break-glass exemption (`fanoutctl node unblock`), kept in the pinned blocked_exempt map so that it
// survives agent restarts: until it expires, no directive, restore or new-pod check blocks the pod again. It lapses at
// its TTL or when `fanoutctl node block` blocks the pod explicitly; block directives (renewals and new epochs alike)
// never clear it.
type Exemption struct {
	// PodUID is the exempt pod (lower case; "" when only the cgroup id is known).
	PodUID string
	// Workload is the workload the pod was blocked for ("" when unknown), for `fanoutctl node list`.
	Workload string
	// ExpiresBootNs is the CLOCK_BOOTTIME instant the exemption lapses; 0 = never.
	ExpiresBootNs uint64
}

// Active reports whether the exemption holds at boot time now.
func (x Exemption) Active(now uint64) bool { return x.ExpiresBootNs == 0 || now < x.ExpiresBootNs }

// Remaining returns the time left at boot time now (0 when expired, -1 when it never expires).
func (x Exemption) Remaining(now uint64) time.Duration {
	return Entry{ExpiresBootNs: x.ExpiresBootNs}.Remaining(now)
}

// exemptValue is the blocked_exempt value: {__u64 expires_boot_ns; __u32 flags; __u32 _pad; char pod_uid[64];
// char workload[384];}, strings zero-padded. Key: the pod cgroup id (__u64).
type exemptValue struct {
	ExpiresBootNs uint64
	Flags         uint32
	_             uint32
	PodUID        [maxPodUID]byte
	Workload      [MaxWorkloadName]byte
}

func exemptSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: pindir.MapBlockedExempt, Type: ebpf.Hash, KeySize: 8, ValueSize: 8 + 4 + 4 + maxPodUID + MaxWorkloadName,
		MaxEntries: MaxExempt, Pinning: ebpf.PinByName}
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// PutExempt records (or replaces) the exemption of pod cgroup cgroupID.
func (m *Maps) PutExempt(cgroupID uint64, x Exemption) error {
	uid := strings.ToLower(x.PodUID)
	if len(uid) >= maxPodUID || len(x.Workload) >= MaxWorkloadName {
		return fmt.Errorf("exempt cgroup %d: pod uid or workload name too long", cgroupID)
	}
	v := exemptValue{ExpiresBootNs: x.ExpiresBootNs}
	copy(v.PodUID[:], uid)
	copy(v.Workload[:], x.Workload)
	if err := m.exempt.Update(cgroupID, v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("exempt cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// DeleteExempt removes the exemption of cgroupID (absent is not an error).
func (m *Maps) DeleteExempt(cgroupID uint64) error {
	err := m.exempt.Delete(cgroupID)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete exemption of cgroup %d: %w", cgroupID, err)
	}
	return nil
}

// ListExempt returns every exemption by pod cgroup id (expired ones included; see Exemption.Active).
func (m *Maps) ListExempt() (map[uint64]Exemption, error) {
	out := make(map[uint64]Exemption)
	var (
		k uint64
		v exemptValue
	)
	it := m.exempt.Iterate()
	for it.Next(&k, &v) {
		out[k] = Exemption{PodUID: cstring(v.PodUID[:]), Workload: cstring(v.Workload[:]), ExpiresBootNs: v.ExpiresBootNs}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list exemptions: %w", err)
	}
	return out, nil
}

// ClearExempt removes the exemptions of cgroupID and of podUID (under any cgroup id; "" matches none): what an
// explicit block of the pod does. Returns how many it removed.
func (m *Maps) ClearExempt(cgroupID uint64, podUID string) (int, error) {
	all, err := m.ListExempt()
	if err != nil {
		return 0, err
	}
	n := 0
	for id, x := range all {
		if id != cgroupID && (podUID == "" || !strings.EqualFold(x.PodUID, podUID)) {
			continue
		}
		if err := m.DeleteExempt(id); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// PruneExempt deletes the exemptions expired at boot time now and returns the ones still active.
func (m *Maps) PruneExempt(now uint64) (active, expired map[uint64]Exemption, err error) {
	all, err := m.ListExempt()
	if err != nil {
		return nil, nil, err
	}
	active, expired = map[uint64]Exemption{}, map[uint64]Exemption{}
	var errs []error
	for id, x := range all {
		if x.Active(now) {
			active[id] = x
			continue
		}
		if err := m.DeleteExempt(id); err != nil {
			errs = append(errs, err)
			continue
		}
		expired[id] = x
	}
	return active, expired, errors.Join(errs...)
}

// ExemptSet answers "is this pod exempt?" over the exemptions active at one instant, by cgroup id or pod UID.
type ExemptSet struct {
	byID  map[uint64]Exemption
	byUID map[string]uint64
}

// NewExemptSet indexes the exemptions of all that are active at boot time now.
func NewExemptSet(all map[uint64]Exemption, now uint64) ExemptSet {
	s := ExemptSet{byID: map[uint64]Exemption{}, byUID: map[string]uint64{}}
	for id, x := range all {
		if !x.Active(now) {
			continue
		}
		s.byID[id] = x
		if x.PodUID != "" {
			s.byUID[strings.ToLower(x.PodUID)] = id
		}
	}
	return s
}

// Match returns the exemption covering the pod cgroup cgroupID of pod podUID, if any, with the cgroup id it is
// recorded under (cgroupID, or another cgroup of the same pod).
func (s ExemptSet) Match(cgroupID uint64, podUID string) (key uint64, x Exemption, ok bool) {
	if x, ok := s.byID[cgroupID]; ok {
		return cgroupID, x, true
	}
	if podUID == "" {
		return 0, Exemption{}, false
	}
	key, ok = s.byUID[strings.ToLower(podUID)]
	if !ok {
		return 0, Exemption{}, false
	}
	return key, s.byID[key], true
}

// Len returns the number of active exemptions in the set.
func (s ExemptSet) Len() int { return len(s.byID) }
