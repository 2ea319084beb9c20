package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Cgroup2Mount returns the mount point of the cgroup2 hierarchy, read from /proc/mounts.
func Cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "", fmt.Errorf("open /proc/mounts: %w", err)
	}
	defer f.Close()
	return FindCgroup2Mount(f)
}

// FindCgroup2Mount parses a mounts table (/proc/mounts format) and returns the cgroup2 mount point. When several
// exist (bind mounts), /sys/fs/cgroup is preferred, then the shortest path.
func FindCgroup2Mount(r io.Reader) (string, error) {
	var best string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[2] != "cgroup2" {
			continue
		}
		mp := unescapeMount(fields[1])
		switch {
		case mp == "/sys/fs/cgroup":
			return mp, nil
		case best == "" || len(mp) < len(best):
			best = mp
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	if best == "" {
		return "", errors.New("no cgroup2 mount found in /proc/mounts")
	}
	return best, nil
}

// unescapeMount undoes the octal escapes (\040 for space, ...) of /proc/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// PodsCgroup returns the kubelet's pods cgroup under a cgroup2 mount: kubepods.slice (systemd driver) or kubepods
// (cgroupfs driver), whichever exists.
func PodsCgroup(mount string) (string, error) {
	for _, name := range []string{"kubepods.slice", "kubepods"} {
		p := filepath.Join(mount, name)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no kubepods.slice or kubepods cgroup under %s (is this a kubelet node? set --cgroup.root)", mount)
}

// DefaultRoot returns the default attach point: the kubelet's pods cgroup under the cgroup2 mount.
func DefaultRoot() (string, error) {
	mount, err := Cgroup2Mount()
	if err != nil {
		return "", err
	}
	return PodsCgroup(mount)
}
