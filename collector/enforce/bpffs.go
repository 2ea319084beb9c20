package enforce

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const defaultBPFFS = "/sys/fs/bpf"

// ensurePinDir makes sure dir lies on a bpffs, mounting bpffs at /sys/fs/bpf when dir is below it and nothing is
// mounted there, and creates it.
func ensurePinDir(dir string) error {
	dir = filepath.Clean(dir)
	if (dir == defaultBPFFS || strings.HasPrefix(dir, defaultBPFFS+"/")) && !isBPFFS(defaultBPFFS) {
		if err := os.MkdirAll(defaultBPFFS, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", defaultBPFFS, err)
		}
		if err := unix.Mount("bpf", defaultBPFFS, "bpf", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount bpffs at %s: %w", defaultBPFFS, err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create pin dir %s: %w", dir, err)
	}
	if !isBPFFS(dir) {
		return fmt.Errorf("pin dir %s is not on a bpf filesystem", dir)
	}
	return nil
}

func isBPFFS(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.BPF_FS_MAGIC
}
