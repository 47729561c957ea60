package feed

import (
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

func TestFilterSubtree(t *testing.T) {
	const host, ctr = 100, 200
	var f Filter
	f.Types, _ = events.ParseTypeSet("")
	// Seeds are numbered in the container's namespace: 5 and its child 6.
	f.FollowSubtree(ctr, []uint32{5, 6})
	steps := []struct {
		ev   *events.Event
		want bool
	}{
		{filterEvent(events.TypeExec, 1005, 1001, []uint32{1005, 5}, []uint32{host, ctr}, []uint32{1001, 1}, "sh"), true},
		{filterEvent(events.TypeFork, 1010, 1005, []uint32{1010, 10}, []uint32{host, ctr}, []uint32{1005, 5}, "sh"), true},
		{filterEvent(events.TypeFork, 1011, 1010, []uint32{1011, 11}, []uint32{host, ctr}, []uint32{1010, 10}, "sh"), true},
		{filterEvent(events.TypeExec, 1006, 1005, []uint32{1006, 6}, []uint32{host, ctr}, []uint32{1005, 5}, "cat"), true},
		{filterEvent(events.TypeFork, 1020, 1001, []uint32{1020, 20}, []uint32{host, ctr}, []uint32{1001, 1}, "sh"), false},
		{filterEvent(events.TypeFork, 2000, 1, []uint32{2000}, []uint32{host}, []uint32{1}, "cron"), false},
		{filterEvent(events.TypeExit, 1011, 1010, []uint32{1011, 11}, []uint32{host, ctr}, []uint32{1010, 10}, "sh"), true},
		// 1011's number is reused by an unrelated process.
		{filterEvent(events.TypeFork, 1011, 1, []uint32{1011}, []uint32{host}, []uint32{1}, "x"), false},
		{&events.Event{Type: events.TypeLost, Count: 3}, true},
	}
	for i, s := range steps {
		if got := f.Match(s.ev); got != s.want {
			t.Errorf("step %d (%s of %d): Match = %v, want %v", i, s.ev.Type, s.ev.PID, got, s.want)
		}
	}
}

func TestFilterTypesCommAndPidNS(t *testing.T) {
	f := Filter{PidNS: 200, Comm: []byte("nginx")}
	f.Types.Add(events.TypeExec)
	in := filterEvent(events.TypeExec, 10, 9, []uint32{10, 2}, []uint32{100, 200}, []uint32{9, 1}, "nginx")
	if !f.Match(in) {
		t.Error("exec of nginx in the namespace was dropped")
	}
	if f.Match(filterEvent(events.TypeFork, 10, 9, []uint32{10, 2}, []uint32{100, 200}, []uint32{9, 1}, "nginx")) {
		t.Error("fork passed an exec-only filter")
	}
	if f.Match(filterEvent(events.TypeExec, 10, 9, []uint32{10}, []uint32{100}, []uint32{9}, "nginx")) {
		t.Error("a process outside the namespace passed")
	}
	if f.Match(filterEvent(events.TypeExec, 11, 9, []uint32{11, 3}, []uint32{100, 200}, []uint32{9, 1}, "nginx-worker")) {
		t.Error("another comm passed")
	}
}

// TestFilterCommAnyItHad: --comm keeps a process by any comm it had: a
// busybox applet (exec'd as /proc/self/exe, comm exe, argv[0] sleep, then
// renamed), a process that renames itself away, and none after its exit,
// when its PID is another's.
func TestFilterCommAnyItHad(t *testing.T) {
	f := Filter{Comm: []byte("sleep")}
	f.Types, _ = events.ParseTypeSet("")
	at := func(ev *events.Event, start uint64) *events.Event { ev.StartBoot = start; return ev }
	applet := at(filterEvent(events.TypeExec, 20, 1, []uint32{20}, []uint32{100}, []uint32{1}, "exe"), 5)
	applet.SetArgs([]string{"sleep", "60"})
	renamed := at(filterEvent(events.TypeRename, 20, 1, []uint32{20}, []uint32{100}, []uint32{1}, "sleep"), 5)
	renamed.OldCommLen = uint8(copy(renamed.OldComm[:], "exe"))
	away := at(filterEvent(events.TypeRename, 30, 1, []uint32{30}, []uint32{100}, []uint32{1}, "hidden"), 7)
	away.OldCommLen = uint8(copy(away.OldComm[:], "sleep"))
	steps := []struct {
		ev   *events.Event
		want bool
	}{
		{applet, true},
		{renamed, true},
		{at(filterEvent(events.TypeExit, 20, 1, []uint32{20}, []uint32{100}, []uint32{1}, "sleep"), 5), true},
		{at(filterEvent(events.TypeExec, 20, 1, []uint32{20}, []uint32{100}, []uint32{1}, "bash"), 9), false}, // PID reused
		{at(filterEvent(events.TypeExec, 30, 1, []uint32{30}, []uint32{100}, []uint32{1}, "sleep"), 7), true},
		{away, true},
		{at(filterEvent(events.TypeFork, 30, 1, []uint32{30}, []uint32{100}, []uint32{1}, "hidden"), 7), true},
		{at(filterEvent(events.TypeExec, 40, 1, []uint32{40}, []uint32{100}, []uint32{1}, "bash"), 8), false},
	}
	for i, s := range steps {
		if got := f.Match(s.ev); got != s.want {
			t.Errorf("step %d (%s of %d, comm %s): Match = %v, want %v", i, s.ev.Type, s.ev.PID, s.ev.Comm[:s.ev.CommLen], got, s.want)
		}
	}
}

// filterEvent is an event of pid at the given PIDs and namespaces, host first.
func filterEvent(typ events.Type, pid, ppid uint32, nspid, pidns, nsppid []uint32, comm string) *events.Event {
	ev := &events.Event{Type: typ, PID: pid, TID: pid, PPID: ppid, Levels: len(nspid)}
	copy(ev.NSPid[:], nspid)
	copy(ev.PidNS[:], pidns)
	copy(ev.NSPPid[:], nsppid)
	ev.SetComm(comm)
	return ev
}
