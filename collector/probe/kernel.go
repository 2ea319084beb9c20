package probe

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// kernelAtLeast reports whether the running kernel's release is at least major.minor (false when unreadable).
func kernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	return releaseAtLeast(unix.ByteSliceToString(u.Release[:]), major, minor)
}

// releaseAtLeast parses a release such as "6.18.44-fc-v1272" or "5.15.0-91-generic".
func releaseAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err := strconv.Atoi(parts[0])
	if err != nil {
		return false
	}
	mi, err := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}
