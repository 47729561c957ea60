package procfs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

func statIno(t *testing.T, path string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

func TestReadProcSelf(t *testing.T) {
	var ev events.Event
	if err := ReadProc(ProcRoot, os.Getpid(), &ev); err != nil {
		t.Fatal(err)
	}
	last := ev.Levels - 1
	if int(ev.NSPid[0]) != os.Getpid() || int(ev.PPID) != os.Getppid() {
		t.Errorf("pid %d ppid %d, want %d %d", ev.NSPid[0], ev.PPID, os.Getpid(), os.Getppid())
	}
	if own := statIno(t, "/proc/self/ns/pid"); ev.PidNS[last] != own || ev.NS[events.NSPid] != own {
		t.Errorf("pidns %v ns.pid %d, want own %d last", ev.PidNS[:ev.Levels], ev.NS[events.NSPid], own)
	}
	if int(ev.NSPPid[0]) != os.Getppid() {
		t.Errorf("nsppid %v, want parent %d first", ev.NSPPid[:ev.Levels], os.Getppid())
	}
	for k, name := range events.NSNames {
		if want := statIno(t, "/proc/self/ns/"+name); ev.NS[k] != want {
			t.Errorf("ns %s = %d, want %d", name, ev.NS[k], want)
		}
	}
	if ev.UID != uint32(os.Geteuid()) || ev.GID != uint32(os.Getegid()) || ev.CommString() == "" || len(ev.Argv()) == 0 {
		t.Errorf("uid %d gid %d comm %q args %q", ev.UID, ev.GID, ev.CommString(), ev.Argv())
	}
}

func TestReadProcGone(t *testing.T) {
	var ev events.Event
	if err := ReadProc(ProcRoot, PIDMaxLimit, &ev); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ReadProc of a PID no process can have: %v, want ErrNoProcess", err)
	}
}

func TestTasks(t *testing.T) {
	if n := Tasks(ProcRoot); n <= 0 {
		t.Errorf("Tasks(%s) = %d, want the kernel's task count", ProcRoot, n)
	}
	root := t.TempDir()
	for loadavg, want := range map[string]int{
		"0.20 0.18 0.12 1/80 11206\n": 80,
		"0.20 0.18 0.12\n":            0,
		"0.20 0.18 0.12 80 11206\n":   0,
	} {
		if err := os.WriteFile(root+"/loadavg", []byte(loadavg), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := Tasks(root); got != want {
			t.Errorf("Tasks of loadavg %q = %d, want %d", loadavg, got, want)
		}
	}
}

func TestResolvePidNS(t *testing.T) {
	own := statIno(t, "/proc/self/ns/pid")
	good := map[string]uint32{
		"pid:[4026532999]":        4026532999,
		"4026532999":              4026532999,
		strconv.Itoa(os.Getpid()): own,
		"/proc/self/ns/pid":       own,
	}
	for ref, want := range good {
		if got, err := ResolvePidNS(ProcRoot, ref); err != nil || got != want {
			t.Errorf("ResolvePidNS(%q) = %d, %v; want %d", ref, got, err, want)
		}
	}
	bad := []string{"", "pid:[]", "pid:[x]", "pid:[12", "net:[4026531833]", "-1", "0", "1.5", "/proc/self/ns/net"}
	for _, ref := range bad {
		if _, err := ResolvePidNS(ProcRoot, ref); !errors.Is(err, ErrBadRef) {
			t.Errorf("ResolvePidNS(%q): %v, want ErrBadRef", ref, err)
		}
	}
	if _, err := ResolvePidNS(ProcRoot, "/nonexistent/ns"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolvePidNS of a missing file: %v, want ErrNotFound", err)
	}
	if _, err := ResolvePidNS(ProcRoot, strconv.Itoa(PIDMaxLimit)); !errors.Is(err, ErrNoProcess) {
		t.Errorf("ResolvePidNS of a PID no process has: %v, want ErrNoProcess", err)
	}
}

// TestNestedNamespace reads a process two pid namespaces deep.
func TestNestedNamespace(t *testing.T) {
	testenv.Require(t)
	// unshare (PID 1 of a new namespace) runs sleep as PID 1 of a nested one.
	outer := testenv.StartInNewPidNS(t, nil, "unshare", "--pid", "--fork", "sleep", "10")
	sleep := testenv.WaitChild(t, outer)
	if pids, err := Descendants(ProcRoot, outer); err != nil || len(pids) != 2 || pids[1] != uint32(sleep) {
		t.Errorf("Descendants(%d) = %v, %v; want it and %d", outer, pids, err, sleep)
	}
	var ev events.Event
	if err := ReadProc(ProcRoot, sleep, &ev); err != nil {
		t.Fatal(err)
	}
	hostLevels := len(mustNStgid(t, os.Getpid()))
	if ev.Levels != hostLevels+2 || ev.NSPid[ev.Levels-1] != 1 || ev.NSPPid[ev.Levels-1] != 0 {
		t.Errorf("sleep: nspid %v nsppid %v, want two levels deeper, PID 1 with no parent there", ev.NSPid[:ev.Levels], ev.NSPPid[:ev.Levels])
	}
	if ev.PidNS[ev.Levels-1] != statIno(t, fmt.Sprintf("/proc/%d/ns/pid", sleep)) ||
		ev.PidNS[ev.Levels-2] != statIno(t, fmt.Sprintf("/proc/%d/ns/pid", outer)) {
		t.Errorf("pidns %v does not match the namespaces of sleep and its parent", ev.PidNS[:ev.Levels])
	}
	inner := ev.PidNS[ev.Levels-1]
	if got, err := FindInNS(ProcRoot, inner, 1); err != nil || got != sleep {
		t.Errorf("FindInNS(pid 1 in the inner namespace) = %d, %v; want %d", got, err, sleep)
	}
	if _, err := FindInNS(ProcRoot, inner, 2); !errors.Is(err, ErrNoProcess) {
		t.Errorf("FindInNS(pid 2 in the inner namespace): %v, want ErrNoProcess", err)
	}
}

func mustNStgid(t *testing.T, pid int) []uint32 {
	t.Helper()
	st, err := readStatus(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		t.Fatal(err)
	}
	return st.nstgid
}
