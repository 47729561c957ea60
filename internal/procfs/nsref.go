package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PIDMaxLimit is the kernel's PID_MAX_LIMIT: no PID is larger, and every
// namespace inode is (they start at 0xEFFFFFFB), which tells a PID from a
// bare inode number.
const PIDMaxLimit = 4 << 20

// ErrBadRef marks a REF that is not one of the accepted forms.
var ErrBadRef = errors.New("bad namespace reference")

// nsGetNSType is NS_GET_NSTYPE (linux/nsfs.h).
const nsGetNSType = 0xb703

// ResolvePidNS turns a --pidns REF into a pid namespace inode. REF is a PID
// (that process's pid namespace, the PID read in the procfs at root), a path
// to a pid namespace file (/proc/N/ns/pid, a bind mount), "pid:[INODE]", or
// a bare inode number. A malformed REF wraps ErrBadRef; a PID with no
// process wraps ErrNoProcess, a path to nothing ErrNotFound.
func ResolvePidNS(root, ref string) (uint32, error) {
	switch {
	case strings.HasPrefix(ref, "pid:["):
		inner, ok := strings.CutSuffix(strings.TrimPrefix(ref, "pid:["), "]")
		if !ok {
			return 0, fmt.Errorf("%w %q: want pid:[INODE]", ErrBadRef, ref)
		}
		return parseInode(ref, inner)
	case strings.Contains(ref, "/"):
		return pidnsFileInode(ref)
	}
	n, err := strconv.ParseUint(ref, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w %q: want a PID, a path such as /proc/N/ns/pid, pid:[INODE] or an inode number", ErrBadRef, ref)
	}
	if n > PIDMaxLimit {
		return uint32(n), nil
	}
	ino, err := nsInode(filepath.Join(root, ref, "ns", "pid"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, fmt.Errorf("--pidns %s: %w", ref, ErrNoProcess)
	case errors.Is(err, unix.EACCES):
		return 0, fmt.Errorf("--pidns %s: reading another user's namespaces needs root (or CAP_SYS_PTRACE): %w", ref, err)
	}
	return ino, err
}

func parseInode(ref, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%w %q: the inode is not a number", ErrBadRef, ref)
	}
	return uint32(n), nil
}

// pidnsFileInode checks that path is a pid namespace file and returns its inode.
func pidnsFileInode(path string) (uint32, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
		return 0, fmt.Errorf("--pidns %s: %w", path, ErrNotFound)
	} else if err != nil {
		return 0, fmt.Errorf("%w %q: %w", ErrBadRef, path, err)
	}
	defer unix.Close(fd)
	typ, err := unix.IoctlRetInt(fd, nsGetNSType)
	if err != nil || typ != unix.CLONE_NEWPID {
		return 0, fmt.Errorf("%w %q: not a pid namespace file", ErrBadRef, path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return uint32(st.Ino), nil
}
