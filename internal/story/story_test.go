package story

import (
	"strings"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

const hostNS, ctrNS = 4026531836, 4026532300

// ev is an event of pid (started at start) at time t seconds, child of
// ppid, at the host's level, or also PID nspid in ctrNS when not 0.
func ev(typ events.Type, t int64, pid uint32, start uint64, ppid uint32, pstart uint64, nspid uint32) *events.Event {
	e := &events.Event{Type: typ, Time: t * 1e9, PID: pid, TID: pid, PPID: ppid, Levels: 1, StartBoot: start, ParentStartBoot: pstart}
	e.NSPid[0], e.PidNS[0], e.NSPPid[0] = pid, hostNS, ppid
	if nspid != 0 {
		e.Levels, e.NSPid[1], e.PidNS[1] = 2, nspid, ctrNS
	}
	e.SetComm("sh")
	return e
}

func feed(tree *pidmap.Tree, sinks []func(*events.Event), evs ...*events.Event) {
	for _, e := range evs {
		tree.Apply(e)
		for _, s := range sinks {
			s(e)
		}
	}
}

// TestStoryOfAProcess: birth, exec with a credential change, a rename,
// signals both ways, children collapsed (one reparented before its
// exit), repeats folded, and the exit, in order.
func TestStoryOfAProcess(t *testing.T) {
	tree := pidmap.NewTree(64)
	me := events.Key{PID: 100, Start: 1000}
	c := NewCollector(tree, me)
	exec := ev(events.TypeExec, 2, 100, 1000, 1, 10, 0)
	exec.FilenameLen = uint16(copy(exec.Filename[:], "/bin/su"))
	exec.SetArgs([]string{"su", "-"})
	exec.Cred = events.Cred{Known: true, UserLevels: 1}
	exec.Cred.EUID = 0
	fork := ev(events.TypeFork, 1, 100, 1000, 1, 10, 0)
	fork.Cred = events.Cred{Known: true, UserLevels: 1, IDs: events.IDs{UID: 1000, EUID: 1000, SUID: 1000}}
	cred := ev(events.TypeCred, 3, 100, 1000, 1, 10, 0)
	cred.Cred = events.Cred{Known: true, UserLevels: 1}
	cred.OldIDs.EUID, cred.Syscall = 1000, 105
	rename := ev(events.TypeRename, 4, 100, 1000, 1, 10, 0)
	rename.SetComm("x")
	rename.OldCommLen = uint8(copy(rename.OldComm[:], "su"))
	sent := ev(events.TypeSignal, 5, 200, 2000, 1, 10, 0)
	sent.Sig.Number, sent.Sig.Sender.PID, sent.Sig.Sender.StartBoot = 9, 100, 1000
	got := ev(events.TypeSignal, 6, 100, 1000, 1, 10, 0)
	got.Sig.Number, got.Sig.Sender.PID, got.Sig.Sender.StartBoot = 15, 1, 10
	var evs []*events.Event
	evs = append(evs, ev(events.TypeProc, 0, 1, 10, 0, 0, 0), ev(events.TypeFork, 0, 200, 2000, 1, 10, 0), fork, exec, cred, cred, rename, sent, got)
	for i := range uint32(3) {
		child := ev(events.TypeFork, 7, 300+i, uint64(3000+i), 100, 1000, 0)
		exit := ev(events.TypeExit, 8, 300+i, uint64(3000+i), 100, 1000, 0)
		if i == 2 {
			exit.PPID, exit.ParentStartBoot, exit.ExitStatus = 1, 10, 9 // reparented, then killed
		}
		evs = append(evs, child, exit)
	}
	end := ev(events.TypeExit, 9, 100, 1000, 1, 10, 0)
	end.ExitStatus, end.Reaper = 3<<8, 1
	evs = append(evs, end)
	feed(tree, []func(*events.Event){c.Event}, evs...)

	stories := c.Stories()
	if len(stories) != 1 {
		t.Fatalf("%d stories", len(stories))
	}
	var lines []string
	for _, f := range stories[0].Facts {
		lines = append(lines, f.Kind+": "+f.Text)
	}
	want := []string{
		"born: PID 100 in pid:[4026531836], child of sh(1) 1@10",
		`exec: exec /bin/su ["su" "-"]; uid 1000 -> 0, euid 1000 -> 0, suid changed`,
		"finding: privilege-gain: effective uid became 0 (it was 1000) at exec of /bin/su",
		"cred: setuid: euid 1000 -> 0",
		`rename: renamed "su" -> "x"`,
		"sent: sent SIGKILL to sh(200) 200@2000",
		"received: received SIGTERM from (1) 1@10",
		"children: forked 3 children: 1 killed by signal 9 (SIGKILL), 2 exited with 0",
		"exit: exited with 3; its children go to host PID 1",
	}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Errorf("fact %d: %q, want %q\nall: %q", i, at(lines, i), w, lines)
		}
	}
	if stories[0].Facts[3].Repeats != 1 {
		t.Errorf("the cred fact told twice has %d repeats, want 1", stories[0].Facts[2].Repeats)
	}
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// TestContainerGenerations: a restart (same ID, a new init, its namespace
// on the inode the last one had), the entry into it asked by nsenter -t
// its init, and who ended each generation.
func TestContainerGenerations(t *testing.T) {
	tree := pidmap.NewTree(64)
	web := &events.Container{ID: strings.Repeat("a", 64), Name: "web", Runtime: "docker"}
	cg := events.NewCgroup(0, "/docker/"+web.ID, web)
	c := NewContainers("web", tree)
	in := func(e *events.Event) *events.Event { e.Cgroup = cg; return e }
	kill := func(t int64, pid uint32, start uint64) *events.Event {
		e := ev(events.TypeSignal, t, pid, start, 50, 500, 1)
		e.Sig.Number, e.Sig.Sender.PID, e.Sig.Sender.StartBoot = 9, 60, 600
		e.Sig.Sender.CommLen = uint8(copy(e.Sig.Sender.Comm[:], "runc"))
		return e
	}
	nsenter := ev(events.TypeExec, 2, 70, 700, 1, 10, 0)
	nsenter.SetComm("nsenter")
	nsenter.SetArgs([]string{"nsenter", "-t", "101", "-p", "sh"})
	exit1 := in(ev(events.TypeExit, 4, 101, 1010, 50, 500, 1))
	exit1.ExitStatus = 9
	feed(tree, []func(*events.Event){c.Event},
		ev(events.TypeProc, 0, 1, 10, 0, 0, 0), ev(events.TypeProc, 0, 50, 500, 1, 10, 0),
		in(ev(events.TypeFork, 1, 101, 1010, 50, 500, 1)),
		nsenter,
		in(ev(events.TypeFork, 3, 71, 710, 70, 700, 5)), // nsenter's child, forked into the namespace
		kill(4, 101, 1010), exit1,
		in(ev(events.TypeFork, 5, 102, 1020, 50, 500, 1)), // the restart: the same inode
	)
	if len(c.Generations) != 2 {
		t.Fatalf("%d generations, want 2: %+v", len(c.Generations), c.Generations)
	}
	g := c.Generations[0]
	if g.Init.PID != 101 || g.End != 4e9 || g.KilledBy.PID != 60 || g.KilledByComm != "runc" || !strings.Contains(g.Ended, "SIGKILL") {
		t.Errorf("generation 1: %+v", g)
	}
	if g := c.Generations[1]; g.Init.PID != 102 || g.End != 0 || g.Container.ID != web.ID {
		t.Errorf("generation 2: %+v", g)
	}
	if len(c.Entries) != 1 || c.Entries[0].Key.PID != 71 || c.Entries[0].AskedBy == nil || c.Entries[0].AskedBy.Key.PID != 70 ||
		!strings.Contains(c.Entries[0].AskedBy.Evidence, "its target is the container's init, host PID 101") {
		t.Errorf("entries: %+v", c.Entries)
	}
}

// TestGenerationsWithoutAPidNamespace: a container in the host's pid
// namespace (--pid=host, or a member of a pod's shared one) has no init of
// its own. runc's stages come first in its cgroup and exit once the
// container's process runs: that process stands for the init, and a
// restart under the same ID is a new generation.
func TestGenerationsWithoutAPidNamespace(t *testing.T) {
	tree := pidmap.NewTree(64)
	web := &events.Container{ID: strings.Repeat("b", 64), Name: "web", Runtime: "docker"}
	cg := events.NewCgroup(0, "/docker/"+web.ID, web)
	c := NewContainers("web", tree)
	in := func(e *events.Event, comm string) *events.Event { e.Cgroup = cg; e.SetComm(comm); return e }
	exit := func(t int64, pid uint32, start uint64, comm string, status uint32) *events.Event {
		e := in(ev(events.TypeExit, t, pid, start, 50, 500, 0), comm)
		e.ExitStatus = status
		return e
	}
	run := func(t int64, base uint32) []*events.Event {
		return []*events.Event{
			in(ev(events.TypeFork, t, base, uint64(base)*10, 50, 500, 0), "runc"),
			in(ev(events.TypeRename, t, base, uint64(base)*10, 50, 500, 0), "runc:[0:PARENT]"),
			in(ev(events.TypeFork, t, base+1, uint64(base+1)*10, 50, 500, 0), "runc:[1:CHILD]"),
			in(ev(events.TypeFork, t, base+2, uint64(base+2)*10, 50, 500, 0), "runc:[2:INIT]"),
			exit(t, base+1, uint64(base+1)*10, "runc:[1:CHILD]", 0),
			exit(t, base, uint64(base)*10, "runc:[0:PARENT]", 0),
			in(ev(events.TypeExec, t, base+2, uint64(base+2)*10, 50, 500, 0), "sleep"),
		}
	}
	evs := []*events.Event{ev(events.TypeProc, 0, 1, 10, 0, 0, 0), ev(events.TypeProc, 0, 50, 500, 1, 10, 0)}
	evs = append(evs, run(1, 200)...)
	evs = append(evs, exit(4, 202, 2020, "sleep", 15)) // killed by SIGTERM
	evs = append(evs, run(5, 300)...)
	feed(tree, []func(*events.Event){c.Event}, evs...)
	if len(c.Generations) != 2 {
		t.Fatalf("%d generations, want 2: %+v", len(c.Generations), c.Generations)
	}
	if g := c.Generations[0]; g.Init.PID != 202 || g.InitPIDs != "202" || g.Start != 1e9 || g.End != 4e9 || !strings.Contains(g.Ended, "SIGTERM") {
		t.Errorf("generation 1: %+v, want sleep 202's, ended by SIGTERM at 4 s", g)
	}
	if g := c.Generations[1]; g.Init.PID != 302 || g.End != 0 {
		t.Errorf("generation 2: %+v, want sleep 302's, running", g)
	}
}
