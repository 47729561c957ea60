package pidmap

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// OwnPidNS returns the inode of the caller's pid namespace.
func OwnPidNS(root string) (uint32, error) {
	return nsInode(filepath.Join(root, "self", "ns", "pid"))
}

// FindInNS returns the PID, as procfs at root numbers processes, of the
// process whose PID in pid namespace ns is nr. It wraps ErrNoProcess when
// there is none.
func FindInNS(root string, ns, nr uint32) (int, error) {
	if own, err := OwnPidNS(root); err == nil && own == ns {
		if _, err := readStatus(filepath.Join(root, strconv.FormatUint(uint64(nr), 10))); err != nil {
			return 0, fmt.Errorf("pid %d: %w", nr, err)
		}
		return int(nr), nil
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
		if lvl := ev.Level(ns); lvl >= 0 && ev.NSPid[lvl] == nr {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("pid %d in pid:[%d]: %w", nr, ns, ErrNoProcess)
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
