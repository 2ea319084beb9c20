package main

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fanoutdev/fanout/internal/memtrim"
)

// residentImage attributes the pages of a process's executable that are resident (present in its page tables:
// /proc/<pid>/pagemap) to the binary's ELF sections, and the resident .text to Go packages (grouped by module) by
// the function symbols on each page. That is where the file-backed part of the process's RSS goes.
type residentImage struct {
	bySection map[string]int64
	byModule  map[string]int64 // .text only
	total     int64
}

func residentBinary(pid int) (*residentImage, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return nil, fmt.Errorf("resolve exe of %d: %w", pid, err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", exe, err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("symbols of %s: %w", exe, err)
	}
	var funcs []elf.Symbol
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
			funcs = append(funcs, s)
		}
	}
	sort.Slice(funcs, func(i, j int) bool { return funcs[i].Value < funcs[j].Value })
	var sections []*elf.Section
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Addr != 0 && s.Type != elf.SHT_NOBITS {
			sections = append(sections, s)
		}
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("read maps of %d: %w", pid, err)
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("open pagemap of %d: %w", pid, err)
	}
	defer pm.Close()
	const page = 4096
	r := &residentImage{bySection: map[string]int64{}, byModule: map[string]int64{}}
	for _, line := range strings.Split(string(maps), "\n") {
		fl := strings.Fields(line)
		if len(fl) < 6 || fl[5] != exe {
			continue
		}
		lo, hi, ok := strings.Cut(fl[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		off, err3 := strconv.ParseUint(fl[2], 16, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		bias := loadBias(f, start, off)
		entries := make([]byte, (end-start)/page*8)
		if _, err := pm.ReadAt(entries, int64(start/page*8)); err != nil {
			return nil, fmt.Errorf("read pagemap of %d: %w", pid, err)
		}
		for i := 0; i < len(entries)/8; i++ {
			if binary.LittleEndian.Uint64(entries[i*8:])&(1<<63) == 0 {
				continue
			}
			r.total += page
			a := start + uint64(i)*page - bias // the page in the ELF's addresses
			attributed := uint64(0)
			for _, s := range sections {
				lo, hi := max(a, s.Addr), min(a+page, s.Addr+s.Size)
				if lo >= hi {
					continue
				}
				r.bySection[s.Name] += int64(hi - lo)
				attributed += hi - lo
				if s.Name == ".text" {
					attributeText(r.byModule, funcs, lo, hi)
				}
			}
			if attributed < page {
				r.bySection["(headers, padding)"] += int64(page - attributed)
			}
		}
	}
	return r, nil
}

// loadBias is the difference between where a mapping is and where the ELF says its segment goes (0 for the non-PIE
// executables go build makes on linux/amd64).
func loadBias(f *elf.File, start, off uint64) uint64 {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Off&^(p.Align-1) == off {
			return start - p.Vaddr&^(p.Align-1)
		}
	}
	return 0
}

// attributeText adds the bytes of [lo, hi) to the modules of the functions covering them.
func attributeText(byModule map[string]int64, funcs []elf.Symbol, lo, hi uint64) {
	i := sort.Search(len(funcs), func(i int) bool { return funcs[i].Value+funcs[i].Size > lo })
	covered := uint64(0)
	for ; i < len(funcs) && funcs[i].Value < hi; i++ {
		a, b := max(lo, funcs[i].Value), min(hi, funcs[i].Value+funcs[i].Size)
		if a < b {
			byModule[goModule(funcs[i].Name)] += int64(b - a)
			covered += b - a
		}
	}
	if covered < hi-lo {
		byModule["(alignment)"] += int64(hi - lo - covered)
	}
}

// goModule groups a Go function symbol by module (k8s.io/api, github.com/cilium/ebpf, ...); the standard library's
// runtime and crypto packages stand alone, the rest of it is "std".
func goModule(sym string) string {
	if strings.HasPrefix(sym, "type:") || strings.HasPrefix(sym, "go:") {
		return "(compiler-generated)"
	}
	pkg := sym
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		if j := strings.IndexByte(pkg[i:], '.'); j >= 0 {
			pkg = pkg[:i+j]
		}
	} else if j := strings.IndexByte(pkg, '.'); j >= 0 {
		pkg = pkg[:j]
	}
	pkg = strings.TrimPrefix(pkg, "vendor/")
	parts := strings.Split(pkg, "/")
	if !strings.Contains(parts[0], ".") {
		switch parts[0] {
		case "runtime", "crypto":
			return parts[0]
		}
		return "std"
	}
	n := 2
	switch parts[0] {
	case "github.com", "golang.org":
		n = 3
	}
	return strings.Join(parts[:min(n, len(parts))], "/")
}

// top lists the n largest entries of m ("name 1.2 MiB, ...", the rest summed).
func top(m map[string]int64, n int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return m[names[i]] > m[names[j]] })
	var parts []string
	var rest int64
	for i, k := range names {
		if i < n {
			parts = append(parts, fmt.Sprintf("`%s` %.1f MiB", k, mib(m[k])))
		} else {
			rest += m[k]
		}
	}
	if rest > 0 {
		parts = append(parts, fmt.Sprintf("other %.1f MiB", mib(rest)))
	}
	return strings.Join(parts, ", ")
}

// pageOutImage asks the kernel to reclaim the resident pages of a process's executable (process_madvise
// MADV_PAGEOUT on its read-only and executable mappings of it): what the process touches afterwards is faulted back,
// so the binary's resident size some time later is its working set (at the kernel's fault-around granularity), not
// what start-up once touched. Returns the bytes advised.
func pageOutImage(pid int) (int64, error) {
	ms, err := memtrim.ImageMappings(strconv.Itoa(pid))
	if err != nil {
		return 0, fmt.Errorf("image of %d: %w", pid, err)
	}
	type iovec struct{ base, len uint64 }
	iov := make([]iovec, 0, len(ms))
	for _, m := range ms {
		iov = append(iov, iovec{m.Start, m.Len()})
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	n, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(pidfd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)),
		unix.MADV_PAGEOUT, 0, 0)
	runtime.KeepAlive(iov)
	if errno != 0 {
		return 0, fmt.Errorf("process_madvise(MADV_PAGEOUT) on %d: %w", pid, errno)
	}
	return int64(n), nil
}
