package loopbackport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the first port considered: below it lie well-known and registered service ports.
const lowest = 10000

// next is the process's cursor over [lowest, ephemeral start): a port is a process-wide resource, so the cursor
// is too.
var next struct {
	sync.Mutex
	port, lo, hi int
}

// Pick returns a loopback TCP port that was free when picked and that Pick has not returned before in this process.
func Pick() (int, error) {
	next.Lock()
	defer next.Unlock()
	if next.hi == 0 {
		next.lo, next.hi = lowest, ephemeralStart()
		if next.hi-next.lo < 1000 { // a kernel whose ephemeral range starts low: use the range above it
			next.lo, next.hi = 61000, 65536
		}
		next.port = next.lo + rand.IntN(next.hi-next.lo)
	}
	for range next.hi - next.lo {
		p := next.port
		next.port++
		if next.port >= next.hi {
			next.port = next.lo
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken by another process
		}
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("close probe listener on %d: %w", p, err)
		}
		return p, nil
	}
	return 0, errors.New("no free loopback port below the ephemeral range")
}

// ephemeralStart is the first port of the kernel's ephemeral range (32768 when it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= lowest || lo > 65535 {
		return 32768
	}
	return lo
}
