package enforce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// watcher reports pod-level cgroup directories appearing (and disappearing) below a pods root with inotify. It
// watches the root and every non-pod directory down to maxScanDepth (QoS levels, systemd slices); a pod directory
// is reported on its IN_CREATE, before the kubelet can start a container in it.
type watcher struct {
	root    string
	f       *os.File
	fd      int
	dirs    map[int]string // watch descriptor -> dir
	created func(podDir)
	removed func(path string)
}

func newWatcher(root string, created func(podDir), removed func(string)) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify init: %w", err)
	}
	w := &watcher{root: filepath.Clean(root), fd: fd, f: os.NewFile(uintptr(fd), "inotify"),
		dirs: map[int]string{}, created: created, removed: removed}
	if err := w.add(w.root); err != nil {
		w.f.Close()
		return nil, err
	}
	return w, nil
}

// add watches dir and, recursively, its non-pod subdirectories; pods found on the way are reported (they may have
// been created before the watch existed).
func (w *watcher) add(dir string) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_CREATE|unix.IN_DELETE|unix.IN_ONLYDIR)
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	w.dirs[wd] = dir
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			w.child(filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

func (w *watcher) child(path string) {
	if uid, ok := podUIDOf(path); ok {
		if id, err := idOf(path); err == nil {
			w.created(podDir{uid: uid, path: path, id: id})
		}
		return
	}
	if strings.Count(strings.TrimPrefix(path, w.root), "/") < maxScanDepth {
		w.add(path) // a directory removed meanwhile just fails to watch
	}
}

// run reads events until ctx ends.
func (w *watcher) run(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		w.f.Close()
	}()
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read inotify: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				nb := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name = strings.TrimRight(string(nb), "\x00")
			}
			off += unix.SizeofInotifyEvent + int(ev.Len)
			dir, ok := w.dirs[int(ev.Wd)]
			switch {
			case ev.Mask&unix.IN_IGNORED != 0:
				delete(w.dirs, int(ev.Wd))
			case !ok || name == "" || ev.Mask&unix.IN_ISDIR == 0:
			case ev.Mask&unix.IN_CREATE != 0:
				w.child(filepath.Join(dir, name))
			case ev.Mask&unix.IN_DELETE != 0:
				w.removed(filepath.Join(dir, name))
			}
		}
	}
}

func idOf(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
