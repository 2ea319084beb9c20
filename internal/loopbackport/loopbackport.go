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

// minSpan is the fewest ports a band must hold to be used.
const minSpan = 1000

// next is the process's cursor over the band of ports it hands out: a port is a process-wide resource, so the
// cursor is too.
var next struct {
	sync.Mutex
	port, lo, hi int
}

// Pick returns a loopback TCP port that was free when picked and that Pick has not returned before in this process.
func Pick() (int, error) {
	next.Lock()
	defer next.Unlock()
	if next.hi == 0 {
		next.lo, next.hi = band(ephemeralRange())
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
	return 0, errors.New("no free loopback port outside the ephemeral range")
}

// band is the ports [lo, hi) to hand out given the ephemeral range [ephLo, ephHi]: below it when that leaves
// minSpan ports above lowest, else above it, else (an ephemeral range over nearly everything) from lowest up.
func band(ephLo, ephHi int) (lo, hi int) {
	switch {
	case ephLo-lowest >= minSpan:
		return lowest, ephLo
	case 65536-(ephHi+1) >= minSpan:
		return ephHi + 1, 65536
	}
	return lowest, 65536
}

// ephemeralRange is the kernel's ephemeral port range (net.ipv4.ip_local_port_range; Linux's default 32768-60999
// when it cannot be read).
func ephemeralRange() (lo, hi int) {
	const defLo, defHi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defLo, defHi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defLo, defHi
	}
	lo, errLo := strconv.Atoi(f[0])
	hi, errHi := strconv.Atoi(f[1])
	if errLo != nil || errHi != nil || lo < 1 || hi < lo || hi > 65535 {
		return defLo, defHi
	}
	return lo, hi
}
