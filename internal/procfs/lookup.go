package procfs

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// OwnPidNS returns the inode of the caller's pid namespace.
func OwnPidNS(root string) (uint32, error) { return OwnNS(root, "pid") }

// OwnNS returns the inode of the caller's namespace of a kind
// (events.NSNames: "user", "mnt", …).
func OwnNS(root, kind string) (uint32, error) {
	return nsInode(filepath.Join(root, "self", "ns", kind))
}

// FindInNS returns the TGID, as procfs at root numbers processes, of the
// process that is nr in pid namespace ns. A thread ID names its process, as
// it does for kill(2) and /proc/TID: every command reads PIDs this way. It
// wraps ErrNoProcess when there is none.
func FindInNS(root string, ns, nr uint32) (int, error) {
	if own, err := OwnPidNS(root); err == nil && own == ns {
		// /proc/TID is there for every thread, though not listed.
		st, err := readStatus(filepath.Join(root, strconv.FormatUint(uint64(nr), 10)))
		if err != nil {
			return 0, fmt.Errorf("pid %d: %w", nr, err)
		}
		return int(st.tgid), nil
	}
	pids, err := ListPIDs(root)
	if err != nil {
		return 0, err
	}
	var ev events.Event
	for _, pid := range pids {
		if err := ReadProc(root, pid, &ev); err != nil {
			continue // exited meanwhile, or not ours to read
		}
		lvl := ev.Level(ns)
		if lvl < 0 {
			continue
		}
		if ev.NSPid[lvl] == nr || hasThread(root, pid, lvl, nr) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("pid %d in pid:[%d]: %w", nr, ns, ErrNoProcess)
}

// hasThread reports whether process pid has a thread whose ID at level is nr.
func hasThread(root string, pid, level int, nr uint32) bool {
	dir := filepath.Join(root, strconv.Itoa(pid), "task")
	tids, err := ListPIDs(dir)
	if err != nil || len(tids) < 2 {
		return false // the leader alone, already compared
	}
	for _, tid := range tids {
		st, err := readStatus(filepath.Join(dir, strconv.Itoa(tid)))
		if err == nil && level < len(st.nspid) && st.nspid[level] == nr {
			return true
		}
	}
	return false
}

// Descendants returns pid and the PIDs of its live descendants, as procfs at
// root numbers them.
func Descendants(root string, pid int) ([]uint32, error) {
	pids, err := ListPIDs(root)
	if err != nil {
		return nil, err
	}
	children := make(map[uint32][]uint32)
	found := false
	for _, p := range pids {
		st, err := readStatus(filepath.Join(root, strconv.Itoa(p)))
		if errors.Is(err, ErrNoProcess) {
			continue
		} else if err != nil {
			return nil, err
		}
		children[st.ppid] = append(children[st.ppid], uint32(p))
		found = found || p == pid
	}
	if !found {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	out := []uint32{uint32(pid)}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}
