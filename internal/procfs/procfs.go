package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// nsGetParent is NS_GET_PARENT (linux/nsfs.h): an fd for the parent of a
// hierarchical namespace, EPERM above the caller's own.
const nsGetParent = 0xb702

// ProcRoot is where procfs is mounted.
const ProcRoot = "/proc"

// ErrNoProcess means /proc has no such process (it never existed or exited).
var ErrNoProcess = errors.New("no such process")

// errZombie means the process exited and only waits to be reaped: for
// every caller but Lineage, no process.
var errZombie = fmt.Errorf("%w: a zombie, its parent has not reaped it", ErrNoProcess)

// ErrNotFound means a namespace file does not exist.
var ErrNotFound = errors.New("no such file")

// ReadProc fills ev as a TypeProc snapshot of process pid, read from procfs
// at root: its TGID at every pid-namespace level the reader can see
// (NStgid), each level's namespace inode, the parent at each level, its
// namespaces, comm, argv and effective IDs, at the time it was read. PIDs are as the procfs mount's
// pid namespace sees them: from the host, every level. Namespace inodes the
// caller may not read (another user's process, without CAP_SYS_PTRACE) are
// left 0.
func ReadProc(root string, pid int, ev *events.Event) error {
	return readProc(root, pid, ev, true)
}

// readProc is ReadProc; withParent false leaves NSPPid to the tree, which
// takes it from the parent when it holds the parent too (Lineage).
func readProc(root string, pid int, ev *events.Event, withParent bool) error {
	dir := filepath.Join(root, strconv.Itoa(pid))
	st, err := readStatus(dir)
	if err != nil {
		return err
	}
	if len(st.nstgid) == 0 || len(st.nstgid) > events.MaxLevels {
		return fmt.Errorf("%s/status: NStgid has %d levels", dir, len(st.nstgid))
	}
	*ev = events.Event{Type: events.TypeProc, Time: time.Now().UnixNano(), PID: st.nstgid[0], TID: st.nstgid[0], PPID: st.ppid,
		UID: st.ids.EUID, GID: st.ids.EGID}
	ev.Cred.IDs = st.ids
	ev.Cred.Known = true
	ev.Levels = len(st.nstgid)
	copy(ev.NSPid[:], st.nstgid)

	chain, err := nsChain(filepath.Join(dir, "ns", "pid"), events.MaxLevels)
	if err != nil && !errors.Is(err, unix.EACCES) {
		return err
	}
	// chain runs from the process's own namespace up to the reader's.
	if chain != nil && len(chain) != ev.Levels {
		return fmt.Errorf("%s: %d pid levels in NStgid but %d pid namespaces above it", dir, ev.Levels, len(chain))
	}
	for i := range chain {
		ev.PidNS[i] = chain[len(chain)-1-i]
	}

	if withParent && st.ppid != 0 {
		// The parent's levels are a prefix of the child's: a child is
		// always created in its parent's pid namespace or one below it.
		if pst, err := readStatus(filepath.Join(root, strconv.FormatUint(uint64(st.ppid), 10))); err == nil {
			copy(ev.NSPPid[:ev.Levels], pst.nstgid)
		}
	}

	for k, name := range events.NSNames {
		ino, err := nsInode(filepath.Join(dir, "ns", name))
		if err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EACCES) {
			return err
		}
		ev.NS[k] = ino
	}
	if err := readUserLevels(dir, &ev.Cred); err != nil {
		return err
	}
	ev.Cred.LSMLen = uint8(ReadLSM(dir, ev.Cred.LSM[:]))
	var comm [events.CommLen + 1]byte
	if data, err := readSmall(filepath.Join(dir, "comm"), comm[:]); err == nil {
		ev.SetComm(strings.TrimSuffix(string(data), "\n"))
	}
	if n, truncated, err := ReadCmdline(root, pid, ev.Args[:]); err == nil {
		ev.ArgsLen = uint16(n)
		ev.ArgsTruncated = truncated
	}
	ev.ExeUnlinked, ev.ExeMemfd = exeOrigin(dir)
	return nil
}

// exeOrigin tells, as the BPF programs do, whether the process's executable
// has no name left in any directory, and whether it is a memfd: the
// executable's own link count (through /proc/PID/exe, which opens the
// file itself), and the name the kernel gives a memfd's link. Both are
// false where the caller may not read the link (another's process).
func exeOrigin(dir string) (unlinked, memfd bool) {
	var st unix.Stat_t
	exe := filepath.Join(dir, "exe")
	if unix.Stat(exe, &st) != nil || st.Nlink != 0 {
		return false, false
	}
	var buf [16]byte
	n, err := unix.Readlink(exe, buf[:])
	return true, err == nil && strings.HasPrefix(string(buf[:n]), "/memfd:")
}

type procStatus struct {
	tgid, ppid    uint32
	ids           events.IDs // securebits are not in status: 0
	nstgid, nspid []uint32   // the thread group's and the thread's IDs at every level
	zombie        bool
}

// readStatus reads the fields nspidtrace needs from dir/status.
func readStatus(dir string) (procStatus, error) {
	var st procStatus
	var buf [4096]byte
	data, err := readSmall(filepath.Join(dir, "status"), buf[:])
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return st, ErrNoProcess
		}
		return st, fmt.Errorf("read %s/status: %w", dir, err)
	}
	for line := range bytes.Lines(data) {
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		fields := strings.Fields(string(value))
		switch string(key) {
		case "State":
			st.zombie = len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
		case "Tgid":
			st.tgid = parseUint32(fields, 0)
		case "PPid":
			st.ppid = parseUint32(fields, 0)
		case "Uid": // real, effective, saved, fs
			st.ids.UID, st.ids.EUID, st.ids.SUID, st.ids.FSUID = parseUint32(fields, 0), parseUint32(fields, 1), parseUint32(fields, 2), parseUint32(fields, 3)
		case "Gid":
			st.ids.GID, st.ids.EGID, st.ids.SGID, st.ids.FSGID = parseUint32(fields, 0), parseUint32(fields, 1), parseUint32(fields, 2), parseUint32(fields, 3)
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			if len(fields) > 0 {
				set, _ := strconv.ParseUint(fields[0], 16, 64)
				st.ids.Caps[capSetOf(key)] = set
			}
		case "Seccomp":
			st.ids.Seccomp = events.SeccompMode(parseUint32(fields, 0))
		case "NoNewPrivs":
			st.ids.NoNewPrivs = parseUint32(fields, 0) != 0
		case "NStgid":
			st.nstgid = parseUint32s(fields)
		case "NSpid":
			st.nspid = parseUint32s(fields)
		}
	}
	if st.zombie {
		return st, errZombie
	}
	if st.nstgid == nil {
		return st, ErrNoProcess
	}
	return st, nil
}

// readSmall reads a small file of procfs whole, into buf while it fits:
// with three system calls where os.ReadFile makes six, which counts when
// `nspidtrace <pid>` reads a dozen of them in a budget of milliseconds.
func readSmall(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, os.ErrNotExist
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
	}
}

func parseUint32s(fields []string) []uint32 {
	ids := make([]uint32, len(fields))
	for i := range fields {
		ids[i] = parseUint32(fields, i)
	}
	return ids
}

func parseUint32(fields []string, i int) uint32 {
	if i >= len(fields) {
		return 0
	}
	n, _ := strconv.ParseUint(fields[i], 10, 32)
	return uint32(n)
}

// nsInode returns the inode of the namespace behind a /proc/PID/ns/ link.
func nsInode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return 0, os.ErrNotExist
		}
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return uint32(st.Ino), nil
}

// nsChain returns the inodes of the pid or user namespace at path and of
// each of its parents up to the caller's own, innermost first: at most max.
func nsChain(path string, max int) ([]uint32, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return nil, ErrNoProcess
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	var chain []uint32
	for len(chain) <= max {
		var st unix.Stat_t
		err := unix.Fstat(fd, &st)
		if err == nil {
			chain = append(chain, uint32(st.Ino))
		}
		parent, ioErr := unix.IoctlRetInt(fd, nsGetParent)
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		if ioErr != nil {
			// EPERM: the parent is above the caller's pid namespace.
			return chain, nil
		}
		fd = parent
	}
	unix.Close(fd)
	return nil, fmt.Errorf("%s: more than %d nested namespaces", path, max)
}

// ListPIDs returns the TGIDs of every process in procfs at root.
func ListPIDs(root string) ([]int, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", root, err)
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Tasks returns how many tasks (threads) the kernel runs now, machine-wide,
// as /proc/loadavg counts them: an upper bound of the processes a snapshot
// finds, in three system calls. 0 when it cannot tell.
func Tasks(root string) int {
	b, err := readSmall(filepath.Join(root, "loadavg"), make([]byte, 64))
	if err != nil {
		return 0
	}
	// "0.20 0.18 0.12 1/80 11206": running/total.
	fields := strings.Fields(string(b))
	if len(fields) < 4 {
		return 0
	}
	_, total, _ := strings.Cut(fields[3], "/")
	n, _ := strconv.Atoi(total)
	return n
}

// FromProc builds a tree from procfs at root: the fallback without BPF.
// Levels are those the procfs mount's pid namespace can see; level 0 is
// that namespace, which is the host only when run there.
//
// A process whose namespaces the caller may not read (another user's,
// without root) is in the tree all the same, with its PIDs at every level
// from its status; its pid namespaces below procfs's own are inode 0,
// unknown. unread counts those processes.
func FromProc(root string) (tree *pidmap.Tree, unread int, err error) {
	pids, err := ListPIDs(root)
	if err != nil {
		return nil, 0, err
	}
	own, err := OwnPidNS(root)
	if err != nil {
		return nil, 0, err
	}
	tree = pidmap.NewTree(0)
	tree.Reserve(len(pids))
	var ev events.Event
	for _, pid := range pids {
		err := ReadProc(root, pid, &ev)
		if errors.Is(err, errZombie) {
			err = readZombie(root, pid, &ev)
		}
		switch {
		case errors.Is(err, ErrNoProcess):
			continue // exited meanwhile
		case err != nil:
			return nil, 0, err
		}
		if ev.PidNS[0] == 0 {
			// NStgid starts at procfs's pid namespace.
			ev.PidNS[0] = own
			if ev.Levels > 1 {
				unread++
			}
		}
		tree.Apply(&ev)
	}
	tree.Relink()
	return tree, unread, nil
}

// readZombie reads what /proc still shows of a zombie: its PIDs at every
// level, its parent and its comm; it has no namespaces left to read.
func readZombie(root string, pid int, ev *events.Event) error {
	dir := filepath.Join(root, strconv.Itoa(pid))
	st, err := readStatus(dir)
	if !errors.Is(err, errZombie) || len(st.nstgid) == 0 || len(st.nstgid) > events.MaxLevels {
		return ErrNoProcess // reaped meanwhile, or no longer a zombie
	}
	*ev = events.Event{Type: events.TypeProc, Time: time.Now().UnixNano(), PID: st.nstgid[0], TID: st.nstgid[0], PPID: st.ppid,
		UID: st.ids.EUID, GID: st.ids.EGID, Zombie: true, Levels: len(st.nstgid)}
	copy(ev.NSPid[:], st.nstgid)
	var comm [events.CommLen + 1]byte
	if data, err := readSmall(filepath.Join(dir, "comm"), comm[:]); err == nil {
		ev.SetComm(strings.TrimSuffix(string(data), "\n"))
	}
	return nil
}

// ReadCmdline reads process pid's argv, as /proc/PID/cmdline has it, into
// buf and returns how much it read; truncated is true when argv is longer
// than buf. Reading stops at len(buf)+1 bytes, whatever the process put in
// its argument area.
func ReadCmdline(root string, pid int, buf []byte) (n int, truncated bool, err error) {
	fd, err := unix.Open(filepath.Join(root, strconv.Itoa(pid), "cmdline"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, false, err
	}
	defer unix.Close(fd)
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || m <= 0 {
			return n, false, nil
		}
		n += m
	}
	var one [1]byte
	m, _ := unix.Read(fd, one[:])
	return n, m > 0, nil
}

// StartTicks returns when process pid started, as /proc/PID/stat counts it:
// clock ticks (USER_HZ) since boot.
func StartTicks(root string, pid int) (uint64, error) {
	fields, err := statFields(root, pid)
	if err != nil {
		return 0, err
	}
	if len(fields) < 20 {
		return 0, fmt.Errorf("%d/stat: %d fields", pid, len(fields)+2)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// State returns process pid's state letter, as ps shows it: R, S, D, Z, T…
func State(root string, pid int) (string, error) {
	fields, err := statFields(root, pid)
	if err != nil {
		return "", err
	}
	return fields[0], nil
}

// statFields returns the fields of /proc/PID/stat after the comm: the
// state (field 3) first.
func statFields(root string, pid int) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil, err
	}
	// The comm, in parentheses, may hold anything: fields start after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil, fmt.Errorf("%d/stat: no comm", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) == 0 {
		return nil, fmt.Errorf("%d/stat: no state", pid)
	}
	return fields, nil
}
