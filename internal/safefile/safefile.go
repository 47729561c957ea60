// Package safefile reads files whose place or content someone else
// controls (a container's root, a runtime's state) without being led out
// of a root by a symbolic link, blocked by a FIFO or flooded by a huge file.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// ErrTooLarge means a file is larger than the caller's bound.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular means the path names a FIFO, device, socket or directory.
var ErrNotRegular = errors.New("not a regular file")

// ReadInRoot reads the regular file at path resolved inside root, as if
// root were "/": absolute symbolic links and ".." stay inside it (openat2's
// RESOLVE_IN_ROOT), so a container's /etc/passwd that links to /etc/shadow
// reads the container's own. Files over limit bytes are refused whole.
func ReadInRoot(root, path string, limit int64) ([]byte, error) {
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(dir)
	fd, err := unix.Openat2(dir, path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		// Before Linux 5.6: no link is followed at all.
		fd, err = unix.Openat(dir, path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	return readRegular(f, limit)
}

// OpenRegular opens path for reading only if it is a regular file: the
// open cannot block (a FIFO with no writer would hang it forever), and
// the check is of the file opened, not of the name before (which another
// user can swap for a FIFO between the two).
func OpenRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	// Reads of a regular file never wait; leave it as an ordinary one.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// readRegular reads f, a regular file of at most limit bytes.
func readRegular(f *os.File, limit int64) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", f.Name(), ErrNotRegular)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %w (%d bytes, the bound is %d)", f.Name(), ErrTooLarge, st.Size(), limit)
	}
	// The size can grow after Stat: read at most one byte past the bound.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w (the bound is %d bytes)", f.Name(), ErrTooLarge, limit)
	}
	return b, nil
}
