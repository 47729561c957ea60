package pidmap

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

const hostNS, ctrNS, nestedNS = 4026531836, 4026532156, 4026532200

// ev builds an event for process pid (host), child of ppid, at the given
// per-level PIDs; namespaces per level follow from how many levels it has.
func ev(typ events.Type, pid, ppid uint32, nspid ...uint32) *events.Event {
	e := &events.Event{Type: typ, PID: pid, TID: pid, PPID: ppid, Levels: len(nspid), StartBoot: uint64(pid) * 1000}
	copy(e.NSPid[:], nspid)
	copy(e.PidNS[:], []uint32{hostNS, ctrNS, nestedNS}[:len(nspid)])
	e.NS[events.NSPid] = e.PidNS[len(nspid)-1]
	e.NS[events.NSPidForChildren] = e.NS[events.NSPid]
	e.SetComm(fmt.Sprintf("p%d", pid))
	return e
}

func exitEv(pid, reaper uint32, status uint32) *events.Event {
	return &events.Event{Type: events.TypeExit, PID: pid, TID: pid, Reaper: reaper, ExitStatus: status, StartBoot: uint64(pid) * 1000, Time: 42}
}

// parents renders the live tree as "pid<-ppid" pairs, sorted.
func parents(t *Tree) []string {
	var out []string
	t.Walk(func(p *Proc, _ int) {
		pp := "none"
		if p.Parent() != nil {
			pp = fmt.Sprint(p.Parent().PID)
		}
		out = append(out, fmt.Sprintf("%d<-%s", p.PID, pp))
	})
	slices.Sort(out)
	return out
}

func TestTreeSequences(t *testing.T) {
	subreaper := ev(events.TypeFork, 20, 1, 20)
	tests := []struct {
		name   string
		events []*events.Event
		want   []string
	}{{
		name:   "fork and exec",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), ev(events.TypeFork, 10, 1, 10), ev(events.TypeExec, 10, 1, 10)},
		want:   []string{"10<-1", "1<-none"},
	}, {
		name: "threads do not make processes",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), ev(events.TypeFork, 10, 1, 10),
			func() *events.Event { e := ev(events.TypeFork, 10, 1, 10); e.Thread, e.TID = true, 11; return e }(),
			func() *events.Event { e := exitEv(10, 1, 0); e.Thread, e.TID = true, 11; return e }()},
		want: []string{"10<-1", "1<-none"},
	}, {
		name: "a middle parent exits: children go to init",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), ev(events.TypeFork, 10, 1, 10), ev(events.TypeFork, 11, 10, 11),
			ev(events.TypeFork, 12, 10, 12), exitEv(10, 1, 0)},
		want: []string{"11<-1", "12<-1", "1<-none"},
	}, {
		name: "a middle parent exits: children go to the subreaper",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), subreaper, ev(events.TypeFork, 21, 20, 21),
			ev(events.TypeFork, 22, 21, 22), exitEv(21, 20, 0)},
		want: []string{"1<-none", "20<-1", "22<-20"},
	}, {
		name: "container: init's children stay with the dying init until killed",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), ev(events.TypeFork, 30, 1, 30, 1), ev(events.TypeFork, 31, 30, 31, 2),
			exitEv(30, 0, 9), exitEv(31, 1, 9)},
		want: []string{"1<-none"},
	}, {
		// The child's exec read real_parent on another CPU between the
		// parent's exit event and the kernel's reparenting.
		name: "an event naming a parent that already exited does not undo the reparenting",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), ev(events.TypeFork, 10, 1, 10), ev(events.TypeFork, 11, 10, 11),
			exitEv(10, 1, 0), ev(events.TypeExec, 11, 10, 11)},
		want: []string{"11<-1", "1<-none"},
	}, {
		name:   "a process named as its own parent (a malformed file) is a root",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), ev(events.TypeFork, 10, 10, 10), exitEv(10, 1, 0)},
		want:   []string{"1<-none"},
	}, {
		name:   "exit of an unknown process changes nothing",
		events: []*events.Event{ev(events.TypeProc, 1, 0, 1), exitEv(99, 1, 0)},
		want:   []string{"1<-none"},
	}, {
		name: "a snapshot before its parent, then relinked; events repeat the snapshot",
		events: []*events.Event{ev(events.TypeProc, 50, 40, 50), ev(events.TypeProc, 40, 1, 40), ev(events.TypeProc, 1, 0, 1),
			ev(events.TypeFork, 50, 40, 50), ev(events.TypeExec, 50, 40, 50)},
		want: []string{"1<-none", "40<-1", "50<-40"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := NewTree(16)
			for _, e := range tt.events {
				tree.Apply(e)
			}
			tree.Relink()
			if got := parents(tree); !slices.Equal(got, tt.want) {
				t.Errorf("tree %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTreeNamespaceIndex(t *testing.T) {
	tree := NewTree(16)
	for _, e := range []*events.Event{
		ev(events.TypeProc, 1, 0, 1),
		ev(events.TypeFork, 100, 1, 100, 1),    // a container's init
		ev(events.TypeFork, 101, 100, 101, 52), // PID 52 inside
		ev(events.TypeFork, 102, 101, 102, 53, 1),
	} {
		tree.Apply(e)
	}
	ctr := tree.Namespace(ctrNS)
	if ctr == nil || ctr.Level != 1 || ctr.Parent != tree.Namespace(hostNS) || ctr.Init == nil || ctr.Init.PID != 100 {
		t.Fatalf("container namespace: %+v", ctr)
	}
	if p := ctr.Lookup(52); p == nil || p.PID != 101 {
		t.Errorf("PID 52 in the container: %v, want host 101", p)
	}
	nested := tree.Namespace(nestedNS)
	if p := nested.Lookup(1); p == nil || p.PID != 102 || p.LevelOf(ctr) != 1 || p.LevelOf(nested) != 2 {
		t.Errorf("PID 1 of the nested namespace: %+v", p)
	}
	var e events.Event
	tree.Get(102).Fill(&e, 0)
	if !slices.Equal(e.NSPid[:e.Levels], []uint32{102, 53, 1}) || !slices.Equal(e.PidNS[:e.Levels], []uint32{hostNS, ctrNS, nestedNS}) ||
		!slices.Equal(e.NSPPid[:e.Levels], []uint32{101, 52, 0}) {
		t.Errorf("proc of 102: nspid %v pidns %v nsppid %v", e.NSPid[:e.Levels], e.PidNS[:e.Levels], e.NSPPid[:e.Levels])
	}
	// 52 exits: it is no longer found live, but its last holder is.
	tree.Apply(exitEv(101, 100, 7<<8))
	if ctr.Lookup(52) != nil {
		t.Error("PID 52 is still live after its exit")
	}
	if h := tree.LastHolderIn(ctr, 52); h == nil || h.PID != 101 || h.ExitStatus != 7<<8 || h.ExitTime != 42 {
		t.Errorf("last holder of 52: %+v", h)
	}
	if p := tree.Get(102); p.Parent() == nil || p.Parent().PID != 100 {
		t.Errorf("102 was not reparented to the container's init: %+v", p.Parent())
	}
}

// TestTreeReserve: a reserved tree fills as one grown from empty does, and
// Reserve on a tree that holds processes keeps every one of them.
func TestTreeReserve(t *testing.T) {
	grown, reserved := NewTree(16), NewTree(16)
	reserved.Reserve(1000)
	for _, e := range []*events.Event{
		ev(events.TypeProc, 1, 0, 1),
		ev(events.TypeFork, 100, 1, 100, 1),
		ev(events.TypeFork, 101, 100, 101, 52),
	} {
		grown.Apply(e)
		reserved.Apply(e)
	}
	if g, r := parents(grown), parents(reserved); !slices.Equal(g, r) {
		t.Errorf("reserved tree %v, grown %v", r, g)
	}
	reserved.Reserve(1000)
	if p := reserved.Namespace(hostNS).Lookup(101); reserved.Len() != 3 || p == nil || reserved.Namespace(ctrNS).Lookup(52) != p {
		t.Errorf("after Reserve on a full tree: %d processes, host PID 101 is %v", reserved.Len(), p)
	}
}

// The host namespace's index is the tree's own by host PID: it answers
// for its own processes only, and forgets one that exits.
func TestTreeHostIndex(t *testing.T) {
	const otherHost = 4026539999
	tree := NewTree(16)
	tree.Apply(ev(events.TypeProc, 1, 0, 1))
	tree.Apply(ev(events.TypeFork, 10, 1, 10, 1))
	foreign := ev(events.TypeProc, 20, 0, 20)
	foreign.PidNS[0] = otherHost
	tree.Apply(foreign)
	askew := ev(events.TypeProc, 30, 1, 31) // pid and nspid disagree: a malformed file
	tree.Apply(askew)

	host := tree.Namespace(hostNS)
	if p := host.Lookup(10); p == nil || p.PID != 10 || tree.Namespace(ctrNS).Lookup(1) != p {
		t.Errorf("host PID 10 is %v", p)
	}
	if p := host.Lookup(20); p != nil {
		t.Errorf("host PID 20 is %v, in namespace %d", p, otherHost)
	}
	if p := tree.Namespace(otherHost).Lookup(20); p == nil || p.PID != 20 {
		t.Errorf("PID 20 of namespace %d is %v", otherHost, p)
	}
	if p := host.Lookup(30); p != nil {
		t.Errorf("host PID 30 is %v, whose nspid says 31", p)
	}
	tree.Apply(exitEv(10, 1, 0))
	if p := host.Lookup(10); p != nil {
		t.Errorf("host PID 10 after its exit is %v", p)
	}
}

func TestTreeSetnsChangesNamespacesNotPIDs(t *testing.T) {
	tree := NewTree(16)
	tree.Apply(ev(events.TypeProc, 1, 0, 1))
	tree.Apply(ev(events.TypeFork, 10, 1, 10))
	e := ev(events.TypeSetns, 10, 1, 10)
	e.NS[events.NSPidForChildren] = ctrNS
	e.NS[events.NSNet] = 4026532160
	tree.Apply(e)
	var got events.Event
	tree.Get(10).Fill(&got, 0)
	if got.NS[events.NSPidForChildren] != ctrNS || got.NS[events.NSNet] != 4026532160 || got.NS[events.NSPid] != hostNS || got.Levels != 1 {
		t.Errorf("after setns: ns %v levels %d", got.NS, got.Levels)
	}
	failed := ev(events.TypeUnshare, 10, 1, 10)
	failed.Ret = -1
	tree.Apply(failed)
	if tree.Get(10).Fill(&got, 0); got.NS[events.NSNet] != 4026532160 {
		t.Error("a failed unshare changed the namespaces")
	}
}

func TestTreePIDReuse(t *testing.T) {
	tree := NewTree(16)
	tree.Apply(ev(events.TypeProc, 1, 0, 1))
	old := ev(events.TypeFork, 10, 1, 10)
	tree.Apply(old)
	// A snapshot shows a new process with the same PID: the old one's exit
	// was missed. Then the old one's late exit must not remove the new one.
	reused := ev(events.TypeProc, 10, 1, 10)
	reused.StartBoot = 999999
	tree.Apply(reused)
	tree.Apply(exitEv(10, 1, 0))
	if p := tree.Get(10); p == nil || p.Start != 999999 {
		t.Errorf("the reused PID's process: %+v", p)
	}
	if h := tree.LastHolder(10); h == nil || h.Start != 10000 {
		t.Errorf("the old holder: %+v", h)
	}
}

// TestTreeRepeatedExit: a process's second exit (two of its threads both
// saw it end) is told apart from a first one, from a thread's exit and from
// the exit of a later process with the same PID.
func TestTreeRepeatedExit(t *testing.T) {
	tree := NewTree(16)
	tree.Apply(ev(events.TypeProc, 1, 0, 1))
	tree.Apply(ev(events.TypeFork, 10, 1, 10))
	thread := exitEv(10, 1, 0)
	thread.Thread, thread.TID = true, 11
	if tree.RepeatedExit(exitEv(10, 1, 0)) || tree.RepeatedExit(thread) {
		t.Fatal("the first exit of a live process is a repeat")
	}
	tree.Apply(exitEv(10, 1, 0))
	if !tree.RepeatedExit(exitEv(10, 1, 0)) {
		t.Error("the second exit of an exited process is not a repeat")
	}
	if tree.RepeatedExit(thread) {
		t.Error("a thread's exit is a repeat")
	}
	reused := exitEv(10, 1, 0)
	reused.StartBoot = 999999
	if tree.RepeatedExit(reused) {
		t.Error("the exit of a later process with the same PID is a repeat")
	}
	if tree.RepeatedExit(exitEv(20, 1, 0)) {
		t.Error("the exit of a process the tree never saw is a repeat")
	}
}

func TestTreeExitedRingIsBounded(t *testing.T) {
	tree := NewTree(3)
	tree.Apply(ev(events.TypeProc, 1, 0, 1))
	for pid := uint32(10); pid < 20; pid++ {
		tree.Apply(ev(events.TypeFork, pid, 1, pid))
		tree.Apply(exitEv(pid, 1, 0))
	}
	if tree.LastHolder(16) != nil || tree.LastHolder(17) == nil || tree.LastHolder(19) == nil {
		t.Error("the ring does not keep exactly the newest 3 exited processes")
	}
	if len(tree.exited) != 3 || len(tree.lastHolder) != 3 {
		t.Errorf("%d exited kept, %d indexed; want 3", len(tree.exited), len(tree.lastHolder))
	}
}

// The kernel reuses the inode number of a dead pid namespace.
func TestTreeNamespaceInodeReuse(t *testing.T) {
	tree := NewTree(16)
	tree.Apply(ev(events.TypeProc, 1, 0, 1))
	tree.Apply(ev(events.TypeFork, 100, 1, 100, 1, 1)) // ctrNS at level 1, nestedNS at 2
	tree.Apply(exitEv(100, 0, 9))
	reused := ev(events.TypeFork, 200, 1, 200, 1) // the same inode, now at level 1
	reused.PidNS[1] = nestedNS
	tree.Apply(reused)
	ns := tree.Namespace(nestedNS)
	if ns.Level != 1 || ns.Lookup(1) == nil || ns.Lookup(1).PID != 200 {
		t.Errorf("reused inode: level %d, PID 1 = %+v", ns.Level, ns.Lookup(1))
	}
}

func TestTreeMarksWhoEnteredANamespace(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		tree := NewTree(16)
		// The host's init (1), a container's init (100, PID 1 inside),
		// its child (101); nsenter (200, host) and the shell it forks
		// into the container (201, PID 2 there), whose child is 202.
		seq := []*events.Event{
			ev(events.TypeFork, 1, 0, 1),
			ev(events.TypeFork, 100, 1, 100, 1),
			ev(events.TypeFork, 101, 100, 101, 5),
			ev(events.TypeFork, 200, 1, 200),
			ev(events.TypeFork, 201, 200, 201, 2),
			ev(events.TypeFork, 202, 201, 202, 3),
		}
		if snapshot {
			// A snapshot lists processes by PID, children before parents.
			slices.Reverse(seq)
			for _, e := range seq {
				e.Type = events.TypeProc
			}
		}
		for _, e := range seq {
			tree.Apply(e)
		}
		tree.Relink()
		nsenter := events.Key{PID: 200, Start: 200 * 1000}
		for pid, want := range map[uint32]events.Key{1: {}, 100: {}, 101: {}, 200: {}, 201: nsenter, 202: nsenter} {
			if got := tree.Get(pid).EnteredBy; got != want {
				t.Errorf("snapshot %v: %d entered by %+v, want %+v", snapshot, pid, got, want)
			}
		}
		if !tree.Get(201).Entered() || tree.Get(202).Entered() || tree.Get(100).Entered() {
			t.Errorf("snapshot %v: Entered() is true only for the shell nsenter forked", snapshot)
		}
		// nsenter exits; its shell goes to the host's init. It still
		// entered, and its exec says so.
		tree.Apply(exitEv(200, 1, 0))
		tree.Apply(ev(events.TypeExec, 201, 1, 201, 2))
		if p := tree.Get(201); p.EnteredBy != nsenter || !p.Entered() || p.Parent().PID != 1 {
			t.Errorf("snapshot %v: after nsenter's exit, 201 entered by %+v (parent %d)", snapshot, p.EnteredBy, p.Parent().PID)
		}
		var e events.Event
		tree.Get(202).Fill(&e, 0)
		if e.EnteredBy != nsenter {
			t.Errorf("snapshot %v: 202's proc object says entered by %+v", snapshot, e.EnteredBy)
		}
	}
}

// TestParentOutsideTheTree: a caller deep in nested pid namespaces sees
// only its namespace's processes, so its init's parent is not in the tree;
// the parent's PIDs at each level still come from the init's own event,
// and are forgotten when it is reparented.
func TestParentOutsideTheTree(t *testing.T) {
	tree := NewTree(4)
	init := ev(events.TypeProc, 300, 200, 300, 7, 1)
	copy(init.NSPPid[:], []uint32{200, 6, 0})
	tree.Apply(init)
	p := tree.Get(300)
	var got events.Event
	p.Fill(&got, 0)
	if [3]uint32(got.NSPPid[:3]) != [3]uint32{200, 6, 0} || p.ParentNSPid(1) != 6 {
		t.Errorf("nsppid %v, want [200 6 0]", got.NSPPid[:3])
	}
	// Reparented to a reaper the tree does not hold either: what is known
	// of the new parent is its host PID only.
	tree.Apply(ev(events.TypeExec, 300, 1, 300, 7, 1))
	if p.ParentNSPid(1) != 0 || p.ParentNSPid(0) != 1 {
		t.Errorf("after a reparent: %d %d, want 1 0", p.ParentNSPid(0), p.ParentNSPid(1))
	}
}
