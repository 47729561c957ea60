package procfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// InitPidNS is the inode of the host's (the initial) pid namespace: the
// kernel gives it this fixed number (PROC_PID_INIT_INO), on every host.
const InitPidNS = 0xeffffffc

// nsGetTGIDFromPidNS is NS_GET_TGID_FROM_PIDNS (linux/nsfs.h, Linux 6.11):
// the caller's PID of the process that is ARG in the namespace.
const nsGetTGIDFromPidNS = 0x8004b707

// maxLineage bounds the ancestors read: PIDs change hands while the
// chain is read, and a chain that loops must end.
const maxLineage = 4096

// ErrIncomplete means /proc cannot show everything the kernel's task
// iterator would: ask the iterator.
var ErrIncomplete = errors.New("/proc cannot show all of it")

// InHostPidNS reports whether the caller is in the host's pid namespace
// and procfs at root is that namespace's: then /proc/PID/status NStgid
// holds every level of every process, and NS_GET_PARENT reaches every pid
// namespace.
func InHostPidNS(root string) bool {
	own, err := OwnPidNS(root)
	if err != nil || own != InitPidNS {
		return false
	}
	self, err := os.Readlink(filepath.Join(root, "self"))
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// Lineage builds, from procfs at root alone, the part of the process tree
// `nspidtrace <pid>` shows: process pid (a TID names its process), its
// ancestors, and the init of its pid namespace, each as the kernel's task
// iterator reports it, so the answer reads the same. It costs a few hundred
// system calls where the iterator needs the kernel's BTF.
//
// Its caller must be in the host's pid namespace (InHostPidNS). A process
// whose namespaces the caller may not read is left out, as from FromProc.
// It returns ErrIncomplete when /proc cannot show what the iterator would
// (a zombie's exit, a namespace's init before Linux 6.11 that is not an
// ancestor), and wraps ErrNoProcess when there is no such process. cgroupOf
// names a process's cgroup; nil leaves cgroups unnamed.
func Lineage(root string, pid int, cgroupOf func(pid int) (*events.Cgroup, error)) (*pidmap.Tree, error) {
	tree := pidmap.NewTree(0)
	var ev events.Event
	read := func(pid int) error {
		if err := readProc(root, pid, &ev, false); err != nil {
			return err
		}
		if ev.PidNS[ev.Levels-1] == 0 {
			return fmt.Errorf("process %d: %w: its namespaces are not ours to read", pid, ErrIncomplete)
		}
		if slices.Contains(ev.Cred.NSUID[:ev.Cred.UserLevels], events.UnreadID) ||
			slices.Contains(ev.Cred.NSGID[:ev.Cred.UserLevels], events.UnreadID) {
			return fmt.Errorf("process %d: %w: its IDs in user namespaces between its own and the host's", pid, ErrIncomplete)
		}
		if cgroupOf != nil {
			cg, err := cgroupOf(pid)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrIncomplete, err)
			}
			ev.Cgroup = cg
		}
		tree.Apply(&ev)
		return nil
	}

	if err := read(pid); err != nil {
		if errors.Is(err, errZombie) {
			return nil, fmt.Errorf("process %d: %w: its exit status", pid, ErrIncomplete)
		}
		return nil, err
	}
	p := tree.Get(ev.PID)
	levels, ns := ev.Levels, ev.PidNS[ev.Levels-1]
	initFound := levels == 1 || ev.NSPid[levels-1] == 1

	for ppid, n := ev.PPID, 0; ppid != 0 && n < maxLineage; n++ {
		err := read(int(ppid))
		if err != nil {
			// Gone (its child is then reparented: the next read of the
			// child would tell), or not ours to read: the lineage ends.
			break
		}
		if ev.Levels == levels && ev.PidNS[levels-1] == ns && ev.NSPid[levels-1] == 1 {
			initFound = true
		}
		ppid = ev.PPID
	}
	if !initFound {
		init, err := initOf(root, int(p.PID))
		if err != nil {
			return nil, err
		}
		if err := read(init); err != nil {
			return nil, fmt.Errorf("the init of pid:[%d]: %w", ns, err)
		}
	}
	tree.Relink()
	return tree, nil
}

// initOf returns the host PID of the init of process pid's pid namespace.
func initOf(root string, pid int) (int, error) {
	fd, err := unix.Open(filepath.Join(root, strconv.Itoa(pid), "ns", "pid"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrIncomplete, err)
	}
	defer unix.Close(fd)
	// The argument is the PID in the namespace, passed by value.
	init, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), nsGetTGIDFromPidNS, 1)
	if errno == 0 {
		return int(init), nil
	}
	err = errno
	// Before 6.11 only a walk of every process would find it.
	return 0, fmt.Errorf("%w: the init of process %d's pid namespace: %v", ErrIncomplete, pid, err)
}
