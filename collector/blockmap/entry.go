package blockmap

import (
	"fmt"
	"hash/fnv"
	"structs"
	"time"

	"golang.org/x/sys/unix"
)

// Entry mirrors struct blocked_entry in bpf/blocked.h (layout tested against the bpf2go type).
type Entry struct {
	_ structs.HostLayout
	// ExpiresBootNs is the CLOCK_BOOTTIME instant (bpf_ktime_get_boot_ns) at which the block stops; 0 = never.
	ExpiresBootNs uint64
	// WorkloadHash is WorkloadHash(workload) of the workload the block belongs to (0 = none recorded).
	WorkloadHash uint32
	// Flags holds Flag* bits.
	Flags uint32
}

// Entry and workload flags.
const (
	// FlagBreakGlass marks a block written by `fanoutctl node` rather than by a directive.
	FlagBreakGlass uint32 = 1 << 0
	// FlagReleasing marks a workload whose release ramp is in progress.
	FlagReleasing uint32 = 1 << 1
)

// BootNow returns the current CLOCK_BOOTTIME in nanoseconds: the clock bpf_ktime_get_boot_ns reads.
func BootNow() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return uint64(ts.Nano()), nil
}

// ExpiresIn converts a TTL into an ExpiresBootNs value relative to now (boot ns); ttl <= 0 means no expiry.
func ExpiresIn(now uint64, ttl time.Duration) uint64 {
	if ttl <= 0 {
		return 0
	}
	return now + uint64(ttl)
}

// Active reports whether the entry blocks at boot time now (same rule as the kernel side).
func (e Entry) Active(now uint64) bool {
	return e.ExpiresBootNs == 0 || now < e.ExpiresBootNs
}

// Remaining returns the time left until the entry expires at boot time now (0 when expired, -1 when it never expires).
func (e Entry) Remaining(now uint64) time.Duration {
	if e.ExpiresBootNs == 0 {
		return -1
	}
	if now >= e.ExpiresBootNs {
		return 0
	}
	return time.Duration(e.ExpiresBootNs - now)
}

// WorkloadHash is the 32-bit FNV-1a hash of a workload name (`Kind/namespace/name`), never 0.
func WorkloadHash(workload string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(workload))
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}
