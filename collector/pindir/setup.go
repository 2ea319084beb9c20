package pindir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Setup makes sure dir lies on a bpffs, mounting bpffs at /sys/fs/bpf when dir is below it and nothing is mounted
// there, and creates it (mode 0700).
func Setup(dir string) error {
	dir = filepath.Clean(dir)
	if dir == BPFFS || strings.HasPrefix(dir, BPFFS+"/") {
		ok, err := IsBPFFS(BPFFS)
		if err != nil {
			return err
		}
		if !ok {
			if err := os.MkdirAll(BPFFS, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", BPFFS, err)
			}
			if err := unix.Mount("bpf", BPFFS, "bpf", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("mount bpffs at %s: %w", BPFFS, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir %s: %w", dir, err)
	}
	ok, err := IsBPFFS(dir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pin dir %s is not on a bpf filesystem", dir)
	}
	return nil
}

// IsBPFFS reports whether path is on a bpffs (false when it does not exist).
func IsBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}

// FindInstance returns the only instance pin dir under base (fanoutctl node's default).
func FindInstance(base string) (string, error) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return "", fmt.Errorf("find instance pin dir: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(base, e.Name()))
		}
	}
	if len(dirs) != 1 {
		return "", fmt.Errorf("found %d instance pin dirs under %s", len(dirs), base)
	}
	return dirs[0], nil
}

// Missing returns the names among names that are not pinned in dir.
func Missing(dir string, names ...string) []string {
	var out []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			out = append(out, n)
		}
	}
	return out
}

// Remove unpins names from dir. Unpinning a link detaches its program once no process holds it open; absent pins
// are not an error.
func Remove(dir string, names ...string) error {
	var errs []error
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unpin %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// Uninstall removes every pin of the instance at dir (traffic probe, kill switch, block list), then the dir itself
// (left in place when it still holds something unknown). Counting and blocking on the node stop.
func Uninstall(dir string) error {
	errs := []error{Remove(dir, All()...)}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENOTEMPTY) {
		errs = append(errs, fmt.Errorf("remove pin dir: %w", err))
	}
	return errors.Join(errs...)
}
