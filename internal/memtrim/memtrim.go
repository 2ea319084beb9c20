package memtrim

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one read-only mapping of a process's executable.
type Mapping struct {
	Start, End uint64
}

// Len is the mapping's length in bytes.
func (m Mapping) Len() uint64 { return m.End - m.Start }

// ImageMappings returns the read-only (and executable) mappings of the executable of process pid ("self" for the
// caller): its code, function tables and read-only data. Writable mappings hold the process's own copies and are
// left out.
func ImageMappings(pid string) ([]Mapping, error) {
	exe, err := os.Readlink("/proc/" + pid + "/exe")
	if err != nil {
		return nil, fmt.Errorf("resolve executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/" + pid + "/maps")
	if err != nil {
		return nil, fmt.Errorf("read maps: %w", err)
	}
	var out []Mapping
	for _, line := range strings.Split(string(maps), "\n") {
		fl := strings.Fields(line)
		if len(fl) < 6 || fl[5] != exe || strings.Contains(fl[1], "w") {
			continue
		}
		lo, hi, _ := strings.Cut(fl[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil && end > start {
			out = append(out, Mapping{Start: start, End: end})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no read-only mapping of %s", exe)
	}
	return out, nil
}

// PageOutSelf advises the kernel to page out the calling process's read-only binary mappings and returns the bytes
// advised. Kernels without MADV_PAGEOUT (< 5.4) return an error and change nothing.
func PageOutSelf() (uint64, error) {
	ms, err := ImageMappings("self")
	if err != nil {
		return 0, err
	}
	var total uint64
	var errs []error
	for _, m := range ms {
		// madvise takes an address range of this process; no Go memory is involved, so no unsafe.Pointer either.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.Start), uintptr(m.Len()), unix.MADV_PAGEOUT); errno != 0 {
			errs = append(errs, fmt.Errorf("madvise(MADV_PAGEOUT) %#x-%#x: %w", m.Start, m.End, errno))
			continue
		}
		total += m.Len()
	}
	return total, errors.Join(errs...)
}
