package probe

// DefaultMaxCgroups is the counter map's capacity when the node's pod capacity is unknown.
const DefaultMaxCgroups = 16384

// SizeForPods returns the counter map capacity for a node that runs up to pods pods: room for 8 cgroups per pod
// (sandbox and containers; API sockets are counted per container cgroup) plus 512 for host services, at least 1024.
// A cgroup that still finds the map full is counted in the overflow bucket, never lost.
func SizeForPods(pods int) uint32 {
	if pods <= 0 {
		return DefaultMaxCgroups
	}
	n := pods*8 + 512
	if n < 1024 {
		n = 1024
	}
	if n > 1<<22 {
		n = 1 << 22
	}
	return uint32(n)
}
