package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procSample is one reading of a process's CPU time and memory.
type procSample struct {
	at        time.Time
	user, sys time.Duration // utime, stime
	rss, hwm  int64         // VmRSS, VmHWM in bytes
}

func (s procSample) cpu() time.Duration { return s.user + s.sys }

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's utime and stime (100 on every Linux architecture Go runs on).
const clockTick = 100

func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read stat of %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return s, fmt.Errorf("parse stat of %d", pid)
	}
	f := strings.Fields(string(b[i+2:])) // f[0] is field 3 (state): utime is field 14, stime 15
	if len(f) < 13 {
		return s, fmt.Errorf("parse stat of %d: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("parse utime/stime of %d", pid)
	}
	s.user, s.sys = time.Duration(ut)*time.Second/clockTick, time.Duration(st)*time.Second/clockTick
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read status of %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(st2))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("parse %s of %d: %w", k, pid, err)
		}
		if k == "VmRSS" {
			s.rss = kb * 1024
		} else {
			s.hwm = kb * 1024
		}
	}
	return s, nil
}

// smapsRSS sums a process's resident memory by mapping (/proc/<pid>/smaps): file mappings by path, anonymous ones as
// [anon], and the kernel's named ones ([heap], [stack], ...) by name.
func smapsRSS(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, fmt.Errorf("read smaps of %d: %w", pid, err)
	}
	out := map[string]int64{}
	name := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") { // a mapping's header line
			name = "[anon]"
			if len(f) >= 6 {
				name = filepath.Base(strings.Join(f[5:], " "))
			}
			continue
		}
		if f[0] == "Rss:" && len(f) >= 2 {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			out[name] += kb * 1024
		}
	}
	return out, nil
}
