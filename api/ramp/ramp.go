package ramp

import (
	"hash/fnv"
	"time"
)

// Offset returns how long after the release was issued the given node unblocks. steps <= 1 releases everyone at
// the start (plus jitter). The last step starts at duration*(steps-1)/steps, so the whole fleet is released within
// duration + jitter.
func Offset(node string, duration time.Duration, steps uint, jitter time.Duration) time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(node))
	x := h.Sum64()
	var off time.Duration
	if steps > 1 && duration > 0 {
		step := x % uint64(steps)
		off = time.Duration(uint64(duration) / uint64(steps) * step)
	}
	if jitter > 0 {
		off += time.Duration((x >> 32) % uint64(jitter))
	}
	return off
}
