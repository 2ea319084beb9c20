package incident

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fanoutdev/fanout/e2e/fleet"
)

// CPU groups the run samples, in cores used per second.
const (
	CPUAPIServer = "kube-apiserver"
	CPUEtcd      = "etcd"
	CPUTelemetry = "telemetry pods"
	CPUSystem    = "system pods"
	CPUMachine   = "whole machine"
)

// CPUPoint is one group's CPU use over the second ending at At, in cores (1.0 = one core busy).
type CPUPoint struct {
	At    time.Time
	Cores float64
}

// cpuSampler reads, every interval, the control plane's processes (/proc/<pid>/stat), each pod's cgroup (cpu.stat
// usage_usec, the pod's processes and their children, e.g. kubectl and its JSON decoding) and the machine
// (/proc/stat): on a 2-core machine a heavy client competes with the API server for the CPU, and this is how much.
type cpuSampler struct {
	pids  map[string]int // group -> pid (kube-apiserver, etcd)
	fleet *fleet.Fleet

	mu     sync.Mutex
	last   map[string]float64 // key -> cumulative CPU seconds at the previous sample
	lastAt time.Time
	out    map[string][]CPUPoint
}

func newCPUSampler(cpPIDs []int, fl *fleet.Fleet) *cpuSampler {
	s := &cpuSampler{pids: map[string]int{}, fleet: fl, last: map[string]float64{}, out: map[string][]CPUPoint{}}
	if len(cpPIDs) == 2 { // harness.Start starts etcd, then kube-apiserver
		s.pids[CPUEtcd], s.pids[CPUAPIServer] = cpPIDs[0], cpPIDs[1]
	}
	return s
}

func (s *cpuSampler) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	s.sample(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.sample(now)
		}
	}
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func (s *cpuSampler) sample(now time.Time) {
	cur := map[string]float64{}
	groups := map[string][]string{} // group -> keys
	for g, pid := range s.pids {
		if v, err := procCPU(pid); err == nil {
			cur[g] = v
			groups[g] = []string{g}
		}
	}
	if v, err := machineBusy(); err == nil {
		cur[CPUMachine] = v
		groups[CPUMachine] = []string{CPUMachine}
	}
	for _, p := range s.fleet.Pods() {
		g := CPUSystem
		if p.Workload.ID() == Telemetry {
			g = CPUTelemetry
		}
		key := "pod " + p.PodDir
		v, err := cgroupCPU(p.PodDir)
		if err != nil {
			continue // removed (rolled back): its last reading stays counted
		}
		cur[key] = v
		groups[g] = append(groups[g], key)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastAt.IsZero() {
		dt := now.Sub(s.lastAt).Seconds()
		for g, keys := range groups {
			var used float64
			for _, k := range keys {
				if prev, ok := s.last[k]; ok && cur[k] >= prev {
					used += cur[k] - prev
				} else if !ok && strings.HasPrefix(k, "pod ") {
					used += cur[k] // a pod born during the interval
				}
			}
			s.out[g] = append(s.out[g], CPUPoint{At: now, Cores: used / dt})
		}
	}
	for k, v := range cur {
		s.last[k] = v
	}
	s.lastAt = now
}

func (s *cpuSampler) series() map[string][]CPUPoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]CPUPoint, len(s.out))
	for g, pts := range s.out {
		out[g] = append([]CPUPoint(nil), pts...)
	}
	return out
}

// procCPU is a process's user+system CPU seconds (fields 14 and 15 of /proc/<pid>/stat).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	k, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat times", pid)
	}
	return (u + k) / clockTicks, nil
}

// cgroupCPU is a cgroup's usage_usec in seconds (cpu.stat exists in every cgroup v2, controller enabled or not).
func cgroupCPU(dir string) (float64, error) {
	f, err := os.Open(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "usage_usec "); ok {
			n, err := strconv.ParseFloat(v, 64)
			return n / 1e6, err
		}
	}
	return 0, fmt.Errorf("no usage_usec in %s/cpu.stat", dir)
}

// machineBusy is the whole machine's non-idle CPU seconds from /proc/stat (other tenants included).
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat")
	}
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already in user
			break
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		busy += n
	}
	return busy / clockTicks, nil
}

// MeanCores is a group's mean CPU use over [from, to).
func (r *Result) MeanCores(group string, from, to time.Time) (float64, bool) {
	var sum float64
	var n int
	for _, p := range r.CPU[group] {
		if !p.At.Before(from) && p.At.Before(to) {
			sum += p.Cores
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}
