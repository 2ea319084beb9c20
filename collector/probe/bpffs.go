package probe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DefaultBPFFS is where bpffs is mounted when missing.
const DefaultBPFFS = "/sys/fs/bpf"

// EnsurePinDir makes sure dir lies on a bpffs (mounting bpffs at /sys/fs/bpf when dir is under it and nothing is
// mounted there) and creates it.
func EnsurePinDir(dir string) error {
	dir = filepath.Clean(dir)
	if dir == DefaultBPFFS || strings.HasPrefix(dir, DefaultBPFFS+"/") {
		if ok, err := isBPFFS(DefaultBPFFS); err != nil || !ok {
			if err := os.MkdirAll(DefaultBPFFS, 0o755); err != nil {
				return fmt.Errorf("create %s: %w", DefaultBPFFS, err)
			}
			if err := unix.Mount("bpf", DefaultBPFFS, "bpf", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("mount bpffs at %s: %w", DefaultBPFFS, err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir: %w", err)
	}
	ok, err := isBPFFS(dir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pin dir %s is not on a bpf filesystem", dir)
	}
	return nil
}

func isBPFFS(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.BPF_FS_MAGIC, nil
}
