package sockdestroy

import (
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// TreeCgroupIDs returns the cgroup ids (kernfs inode numbers) of dir and every cgroup below it. Cgroups removed
// during the walk are skipped.
func TreeCgroupIDs(dir string) ([]uint64, error) {
	var ids []uint64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != dir {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return nil
		}
		ids = append(ids, st.Ino)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk cgroup %s: %w", dir, err)
	}
	return ids, nil
}
