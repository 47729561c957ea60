// Package recording writes and opens nspidtrace's recordings
// (docs/recordings.md): files created safely, the header of this machine,
// the series a rotating record writes (names no one can take ahead,
// pruned only of the caller's own), the files --from names, opened as
// what they must be and ordered into one timeline, and a time cursor over
// that timeline.
package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
)

// Flags decides, before anything is loaded, how path is opened:
// created anew (never through a symbolic link), or with force an existing
// regular file of the caller's replaced. Anything else is refused: a
// link, a directory, a FIFO or device (whoever planted it would read the
// recording, or block its open), another user's file (who would keep
// owning what it holds), a file with other names (a hard link).
func Flags(path string, force bool) (int, error) {
	const flags = os.O_WRONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return flags | os.O_CREATE | os.O_EXCL, nil
	case err != nil:
		return 0, fmt.Errorf("-o %s: %w", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return 0, errSymlink(path)
	case st.IsDir():
		return 0, fault.Usagef("-o %s: it is a directory", path)
	case !st.Mode().IsRegular():
		return 0, errNotRegular(path)
	case !force:
		return 0, errExists(path)
	}
	return flags, replaceable(path, st.Sys().(*syscall.Stat_t))
}

// replaceable says why --force may not replace the regular file path is.
func replaceable(path string, st *syscall.Stat_t) error {
	if int(st.Uid) != os.Geteuid() {
		return fault.Usagef("-o %s --force: the file belongs to uid %d, who would keep reading what it holds: remove it or choose another name", path, st.Uid)
	}
	if st.Nlink > 1 {
		return fault.Usagef("-o %s --force: the file has %d names (hard links): remove it or choose another name", path, st.Nlink)
	}
	return nil
}

func errExists(path string) error {
	return fault.Usagef("-o %s: the file exists (give --force to replace it, or another name)", path)
}

func errSymlink(path string) error {
	return fault.Usagef("-o %s: it is a symbolic link; give the path it points to", path)
}

func errNotRegular(path string) error {
	return fault.Usagef("-o %s: not a regular file (a FIFO, socket or device); a recording is written to a file", path)
}

// Create opens path with Flags' flags, readable by its
// owner only: argv can hold secrets. What was checked of the name is
// checked again of the file opened, which someone may have swapped
// meanwhile; the open cannot block (O_NONBLOCK: a FIFO without a reader
// would hang it, deaf to --duration and SIGTERM). A replaced file is
// emptied only once it is known to be the caller's own.
func Create(path string, flags int) (*os.File, error) {
	fd, err := unix.Open(path, flags|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o600)
	switch {
	case errors.Is(err, unix.EEXIST): // created meanwhile
		return nil, errExists(path)
	case errors.Is(err, unix.ELOOP): // made a link meanwhile
		return nil, errSymlink(path)
	case errors.Is(err, unix.ENXIO): // a FIFO without a reader
		return nil, errNotRegular(path)
	case err != nil:
		return nil, fmt.Errorf("create the recording: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	var st syscall.Stat_t
	if err = syscall.Fstat(fd, &st); err == nil && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		// Writes to a regular file never wait: an ordinary descriptor.
		err = unix.SetNonblock(fd, false)
	}
	f := os.NewFile(uintptr(fd), path)
	switch {
	case err != nil:
		f.Close()
		return nil, fmt.Errorf("create the recording: %w", err)
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		f.Close()
		return nil, errNotRegular(path)
	}
	if flags&os.O_EXCL == 0 {
		if err := replaceable(path, &st); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("replace the recording: %w", err)
		}
	}
	// A replaced file keeps its mode: tighten it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("make the recording private: %w", err)
	}
	return f, nil
}

// ExposedDir reports whether users other than the owner may remove or
// rename files in dir: group- or world-writable, without the sticky bit
// that /tmp has.
func ExposedDir(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.Mode().Perm()&0o022 != 0 && st.Mode()&os.ModeSticky == 0
}

// NewHeader describes this machine, named host (default: its hostname),
// and the recording's start.
func NewHeader(host string, start time.Time) events.Header {
	h := events.Header{Format: events.RecordFormat, Version: 1, Start: start.UnixNano(), Hostname: host}
	if host == "" {
		h.Hostname, _ = os.Hostname()
	}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if id, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		h.BootID = strings.TrimSpace(string(id))
	}
	return h
}
