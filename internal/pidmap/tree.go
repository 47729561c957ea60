package pidmap

import (
	"slices"
	"strconv"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/hugepage"
)

// DefaultExitedKept is how many exited processes a Tree remembers for
// look-back questions ("who held PID 52?").
const DefaultExitedKept = 4096

// Tree is the multi-level process tree: for every live process its PID at
// every pid-namespace level, its parent and its namespaces, kept true by
// applying the kernel's events in order. It is not safe for concurrent use.
type Tree struct {
	procs      map[uint32]*Proc             // live processes by host TGID
	namespaces map[uint32]*PidNS            // pid namespaces by inode
	nssets     map[NSSet]*NSSet             // interned namespace sets: most processes share one
	creds      map[events.Cred]*events.Cred // interned credentials, as nssets

	exited     []*Proc // ring of recently exited processes, at most keep
	next       int     // where the next exited process goes in the ring
	keep       int
	lastHolder map[uint32]*Proc // host TGID -> its last exited holder, while kept
	free       []*Proc          // evicted exited processes, for reuse: no garbage per fork
	slab       []Proc           // blank processes made at once by Reserve, for newProc

	sweepAt int // sweep namespaces when there are this many: see sweepNamespaces
	// unread stands for namespaces the caller may not read, by parent.
	unread map[*PidNS]*PidNS

	gen  uint32 // the current resync generation: see beginResync
	time int64  // the latest event time applied (Unix ns)

	// OnFinding, when set, is called with each finding judged from an
	// event the first time a process shows it (the metrics count them).
	OnFinding func(p *Proc, f events.Finding)
}

// NSSet holds the inode of each namespace kind, indexed by events.NSKind.
type NSSet [events.NSKinds]uint32

// PidNS is one pid namespace.
type PidNS struct {
	Inode  uint32
	Level  int    // 0 for the host's
	Parent *PidNS // nil at level 0
	// Init is the namespace's PID 1 while it lives.
	Init *Proc

	// members holds the live processes by their PID in this namespace.
	// At level 0 it is the tree's own index by host PID: the same
	// processes under the same keys, kept once.
	members map[uint32]*Proc
}

// Proc is one process (thread group).
type Proc struct {
	PID  uint32 // host TGID
	PPID uint32 // host TGID of the parent, also when the parent is not in the tree

	nspid []uint32 // TGID at each level, host first
	// pnspid is the parent's TGID at each level below the host's, as the
	// events said, kept only while the tree does not hold the parent: a
	// caller deep in nested pid namespaces, whose task iterator visits
	// its namespace's processes only, still knows its init's parent there.
	pnspid []uint32
	ns     *PidNS // the deepest: its chain of parents names every level's namespace
	nsset  *NSSet
	parent *Proc
	// Children as an intrusive list, so that reparenting costs no allocation.
	child, prev, next *Proc

	Comm    [events.CommLen]byte
	CommLen uint8
	args    []byte // NUL-separated argv, bounded
	// ArgsTruncated: argv was longer than the bound, and args is its start.
	ArgsTruncated bool
	// The program it runs has no name left in any directory, and is a
	// memfd (events.Event's).
	ExeUnlinked, ExeMemfd bool
	UID, GID              uint32
	cred                  *events.Cred // interned; nil when no event told
	// Start is when the process started (CLOCK_BOOTTIME ns; 0 when
	// unknown): with PID, its key. StartTime is the same instant in Unix ns.
	Start     uint64
	StartTime int64
	// EnteredBy names the process outside p's pid namespace that forked
	// p, or the ancestor p descends from inside it, into the namespace
	// (nsenter, docker exec). Set when p is first linked to its parent
	// and kept: the enterer may exit, and p be reparented, later.
	EnteredBy   events.Key
	originKnown bool
	// Cgroup is the process's cgroup and container, as its latest event
	// told (nil: not known).
	Cgroup *events.Cgroup

	Exited     bool
	ExitTime   int64  // Unix ns
	ExitStatus uint32 // the wait(2) status, once exited (also as a zombie)
	// Zombie: exited, not yet reaped by its parent (from a one-shot
	// snapshot; the live tree retires a process at its exit).
	Zombie bool

	seen uint32 // the last resync generation that saw it

	// findings judged from events (findings.go), in name order; counted
	// are the derived ones OnFinding was told of.
	findings []events.Finding
	counted  events.FindingSet

	// ParentLoop: the events named a parent (PPID) that descends from p,
	// or is p, or sits over MaxChain levels above it. No kernel does
	// that; a recording can. p is shown as a root instead, its subtree
	// under it: the loop is broken where it closed, never followed.
	ParentLoop bool
}

// newProc returns a blank process, reusing an evicted one when it can.
func (t *Tree) newProc(pid uint32) *Proc {
	if n := len(t.free); n > 0 {
		p := t.free[n-1]
		t.free = t.free[:n-1]
		*p = Proc{PID: pid, nspid: p.nspid[:0], pnspid: p.pnspid[:0], args: p.args[:0]}
		return p
	}
	if len(t.slab) > 0 {
		p := &t.slab[0]
		t.slab = t.slab[1:]
		p.PID = pid
		return p
	}
	return &Proc{PID: pid}
}

// NewTree returns an empty tree that remembers keep exited processes.
func NewTree(keep int) *Tree {
	return &Tree{
		procs:      make(map[uint32]*Proc),
		namespaces: make(map[uint32]*PidNS),
		nssets:     make(map[NSSet]*NSSet),
		creds:      make(map[events.Cred]*events.Cred),
		keep:       keep,
		lastHolder: make(map[uint32]*Proc),
		sweepAt:    minSweep,
	}
}

// Reserve readies an empty tree for about procs live processes, as a
// snapshot of the whole machine fills it: its index is made that size
// rather than grown, which would leave a trail of outgrown tables behind
// (140 pages of the 1,000 a snapshot of 10,000 processes touched), and the
// processes are made at once, in huge pages where they fill one (550
// page faults of the 1,700 such a snapshot took). It does nothing to a
// tree that holds anything.
func (t *Tree) Reserve(procs int) {
	if len(t.procs) > 0 || len(t.namespaces) > 0 || procs <= 0 {
		return
	}
	t.procs = make(map[uint32]*Proc, procs)
	slab := hugepage.Slice[Proc](procs)
	t.slab = slab[:cap(slab)] // to the end of its last huge page
}

// Apply updates the tree with one event. Events must come in the kernel's
// order; a snapshot (TypeProc) may overlap events already applied, and
// events may repeat what a snapshot said: Apply is idempotent for both.
func (t *Tree) Apply(ev *events.Event) {
	t.time = max(t.time, ev.Time)
	var before *events.Cred
	judge := judged(ev.Type)
	if p := t.procs[ev.PID]; judge && p != nil && sameProcess(p, ev) {
		before = p.cred
	}
	p := t.apply(ev)
	if p == nil {
		return
	}
	// Any event tells the subject's cgroup now: a process moved into a
	// container's cgroup (runc's init) shows it at its next event.
	if ev.Cgroup != nil {
		p.Cgroup = ev.Cgroup
	}
	if judge {
		t.judge(ev, p, before)
	}
	if t.OnFinding != nil {
		t.noteDerived(p)
	}
}

// apply applies ev and returns its subject while it lives (nil for exits,
// threads and processes the tree does not have).
func (t *Tree) apply(ev *events.Event) *Proc {
	switch ev.Type {
	case events.TypeFork:
		if !ev.Thread {
			return t.upsert(ev)
		}
	case events.TypeProc, events.TypeExec:
		p := t.upsert(ev)
		p.args = append(p.args[:0], ev.Args[:ev.ArgsLen]...)
		p.ArgsTruncated = ev.ArgsTruncated
		p.ExeUnlinked, p.ExeMemfd = ev.ExeUnlinked, ev.ExeMemfd
		p.Zombie = ev.Zombie
		if ev.Zombie {
			p.ExitStatus = ev.ExitStatus
		}
		return p
	case events.TypeExit:
		if !ev.Thread {
			t.exit(ev)
		}
	case events.TypeRename, events.TypeSetns, events.TypeUnshare, events.TypeSignal, events.TypeCred:
		p := t.procs[ev.PID]
		if p == nil || !sameProcess(p, ev) {
			return nil
		}
		switch ev.Type {
		case events.TypeRename:
			p.Comm, p.CommLen = ev.Comm, ev.CommLen
		case events.TypeCred:
			// /proc/PID/status shows the leader's credentials.
			if ev.TID == ev.PID {
				p.setCred(t, ev)
			}
		case events.TypeSetns, events.TypeUnshare:
			// /proc/PID/ns shows the leader's: a non-leader thread's
			// change is its own.
			if ev.TID == ev.PID && ev.Ret == 0 {
				p.nsset = t.intern(ev.NS)
			}
		}
		return p
	}
	return nil
}

// sameProcess reports whether ev is about p and not about a later holder
// of the same PID.
func sameProcess(p *Proc, ev *events.Event) bool {
	return p.Start == 0 || ev.StartBoot == 0 || p.Start == ev.StartBoot
}

// upsert makes the tree's entry for ev's subject match the event.
func (t *Tree) upsert(ev *events.Event) *Proc {
	p := t.procs[ev.PID]
	if p != nil && !sameProcess(p, ev) {
		// The PID was reused and we missed the old holder's exit.
		t.retire(p, ev.Time, 0, p.PPID)
		p = nil
	}
	ppid := ev.PPID
	isNew := p == nil
	if isNew {
		p = t.newProc(ev.PID)
		t.procs[ev.PID] = p
	} else if ppid != p.PPID && t.procs[ppid] == nil && t.lastHolder[ppid] != nil {
		// The event names a parent the tree saw exit: it read real_parent
		// on another CPU after the exit event but before the kernel
		// reparented the children. The exit's reaper is the truth.
		ppid = p.PPID
	}
	t.setLevels(p, ev)
	t.setParent(p, ppid)
	p.pnspid = p.pnspid[:0]
	if p.parent == nil && ppid == ev.PPID && ev.Levels > 1 {
		p.pnspid = append(p.pnspid, ev.NSPPid[1:ev.Levels]...)
	}
	p.nsset = t.intern(ev.NS)
	p.seen = t.gen
	p.Comm, p.CommLen = ev.Comm, ev.CommLen
	p.setCred(t, ev)
	if isNew && p.cred == nil && p.parent != nil {
		// A recording's fork line carries no credentials: a child
		// starts with its parent's.
		p.cred = p.parent.cred
	}
	if ev.StartBoot != 0 {
		p.Start = ev.StartBoot
	}
	if ev.Start != 0 {
		p.StartTime = ev.Start
	}
	if isNew && ev.Cgroup != nil {
		p.Cgroup = ev.Cgroup // markOrigin asks whose pod p is in
	}
	switch {
	case isNew && p.parent != nil:
		p.markOrigin()
	case isNew && len(p.nspid) > 1 && p.nspid[len(p.nspid)-1] != 1 && ev.NSPPid[len(p.nspid)-1] == 0:
		// A parent the tree does not hold (the caller sees only its
		// namespace's processes), outside p's namespace, forked p
		// into it: p entered, as markOrigin would say.
		p.EnteredBy = events.Key{PID: ppid, Start: ev.ParentStartBoot}
	}
	return p
}

// markOrigin records how p came into its pid namespace, from its parent:
// a process forked there by one outside it entered by setns, unless it is
// the namespace's init (unshare, clone(CLONE_NEWPID)); one forked by a
// process inside inherits its parent's origin.
func (p *Proc) markOrigin() {
	p.originKnown = true
	switch parent := p.parent; {
	case p.ns.Level == 0 || p.nspid[len(p.nspid)-1] == 1 || parent.ns != p.ns && p.startsPodMember():
		p.EnteredBy = events.Key{}
	case parent.ns != p.ns:
		p.EnteredBy = events.Key{PID: parent.PID, Start: parent.Start}
	default:
		p.EnteredBy = parent.EnteredBy
	}
}

// startsPodMember reports whether p, forked into its pid namespace from
// outside, is how a container of the pod whose namespace it is started: in
// a pod that shares one pid namespace (Kubernetes' shareProcessNamespace),
// its sandbox's pause is the init, and each of its containers' first
// process is forked in by the runtime, as kubectl exec's shell is. The
// first is the container's own; any later one of the same container
// entered it.
func (p *Proc) startsPodMember() bool {
	init := p.ns.Init
	if init == nil || init == p || !samePod(p.Cgroup, init.Cgroup) || p.Cgroup.Container.ID == init.Cgroup.Container.ID {
		return false
	}
	for _, q := range p.ns.members {
		if q != p && q.Cgroup != nil && q.Cgroup.Container != nil && q.Cgroup.Container.ID == p.Cgroup.Container.ID &&
			(q.Start < p.Start || q.Start == p.Start && q.PID < p.PID) {
			return false
		}
	}
	return true
}

// samePod reports whether two cgroups are containers of one Kubernetes
// pod (its UID is in their paths).
func samePod(a, b *events.Cgroup) bool {
	return a != nil && b != nil && a.Container != nil && b.Container != nil &&
		a.Container.Pod != nil && b.Container.Pod != nil && a.Container.Pod.UID != "" &&
		a.Container.Pod.UID == b.Container.Pod.UID
}

// Entered reports whether p entered its pid namespace itself (it was
// forked into it from outside), rather than descending from one that did.
func (p *Proc) Entered() bool {
	return p.EnteredBy.PID != 0 &&
		(p.parent == nil || p.parent.ns != p.ns || p.parent.EnteredBy != p.EnteredBy)
}

// Subject returns the process ev is about: live, or just exited by ev.
func (t *Tree) Subject(ev *events.Event) *Proc {
	p := t.procs[ev.PID]
	if p == nil {
		p = t.lastHolder[ev.PID]
	}
	if p == nil || !sameProcess(p, ev) {
		return nil
	}
	return p
}

// setLevels records p's PID at each level and registers it in each level's
// namespace index.
func (t *Tree) setLevels(p *Proc, ev *events.Event) {
	if len(p.nspid) == ev.Levels && p.ns != nil && p.ns.Inode == ev.PidNS[ev.Levels-1] &&
		slices.Equal(p.nspid, ev.NSPid[:ev.Levels]) {
		return // unchanged, as for every exec
	}
	t.unregister(p)
	var ns *PidNS
	for i := 0; i < ev.Levels; i++ {
		ns = t.namespace(ev.PidNS[i], i, ns)
	}
	p.ns = ns
	p.nspid = append(p.nspid[:0], ev.NSPid[:ev.Levels]...)
	// Level 0's index is t.procs, which upsert keeps.
	for i, ns := len(p.nspid)-1, p.ns; ns != nil && i > 0; i, ns = i-1, ns.Parent {
		ns.members[p.nspid[i]] = p
	}
	if p.nspid[len(p.nspid)-1] == 1 {
		p.ns.Init = p
	}
}

// unregister removes p from the namespace index (but for level 0's, which
// is t.procs: the caller's to keep).
func (t *Tree) unregister(p *Proc) {
	for i, ns := len(p.nspid)-1, p.ns; ns != nil && i >= 0; i, ns = i-1, ns.Parent {
		if i > 0 && ns.members[p.nspid[i]] == p {
			delete(ns.members, p.nspid[i])
		}
		if ns.Init == p {
			ns.Init = nil
		}
	}
}

// namespace returns the pid namespace with inode at level, creating it as a
// child of parent. The kernel reuses a dead namespace's inode number: one
// known at another place in the hierarchy is a new namespace.
func (t *Tree) namespace(inode uint32, level int, parent *PidNS) *PidNS {
	if inode == 0 && parent != nil {
		return t.unreadNamespace(parent)
	}
	ns := t.namespaces[inode]
	if ns == nil || ns.Level != level || ns.Parent != parent {
		ns = &PidNS{Inode: inode, Level: level, Parent: parent, members: t.procs}
		if level > 0 {
			ns.members = make(map[uint32]*Proc)
		}
		if len(t.namespaces) >= t.sweepAt {
			t.sweepNamespaces(parent)
		}
		t.namespaces[inode] = ns
	}
	return ns
}

// unreadNamespace stands for the pid namespaces below parent that the
// caller may not read (inode 0: an unprivileged /proc answer). What is
// unknown is one namespace per parent, never looked up by inode: PIDs
// in it are shown, namespaces are not guessed.
func (t *Tree) unreadNamespace(parent *PidNS) *PidNS {
	if t.unread == nil {
		t.unread = make(map[*PidNS]*PidNS)
	}
	ns := t.unread[parent]
	if ns == nil {
		ns = &PidNS{Level: parent.Level + 1, Parent: parent, members: make(map[uint32]*Proc)}
		t.unread[parent] = ns
	}
	return ns
}

// sweepNamespaces forgets the namespaces no live or remembered process is
// in: containers come and go, each with namespaces of its own, and a
// tree that runs for weeks (or a recording of endless churn) would hold
// them all. It runs when the table has doubled since the last sweep, so
// its cost is spread over the namespaces made. Those of chain (the levels
// above a namespace being made) are kept too.
func (t *Tree) sweepNamespaces(chain *PidNS) {
	keep := make(map[*PidNS]bool, len(t.namespaces))
	mark := func(ns *PidNS) {
		for ; ns != nil && !keep[ns]; ns = ns.Parent {
			keep[ns] = true
		}
	}
	mark(chain)
	for _, p := range t.procs {
		mark(p.ns)
	}
	for _, p := range t.exited {
		mark(p.ns)
	}
	for inode, ns := range t.namespaces {
		if !keep[ns] {
			delete(t.namespaces, inode)
		}
	}
	t.sweepAt = max(minSweep, 2*len(t.namespaces))
}

// minSweep is the fewest namespaces a tree holds before it sweeps them.
const minSweep = 1024

// setCred records ev's IDs, and its credentials when it carries them.
func (p *Proc) setCred(t *Tree, ev *events.Event) {
	p.UID, p.GID = ev.UID, ev.GID
	if !ev.Cred.Known {
		return
	}
	if c, ok := t.creds[ev.Cred]; ok {
		p.cred = c
		return
	}
	c := new(events.Cred)
	*c = ev.Cred
	if len(t.creds) >= maxCreds {
		clear(t.creds)
	}
	t.creds[*c] = c
	p.cred = c
}

// maxInterned bounds the tables that share credentials and namespace sets
// between processes: past it a table starts afresh (what processes hold
// stays theirs), so that endless churn, live or in a recording, costs
// memory only up to it.
const maxInterned = 1 << 14

// maxCreds bounds the credentials' table: an entry holds two copies of
// 640 bytes (the key and the value), 2,048 of them 2.6 MiB, where the
// namespace sets' 16,384 hold 1.6. A node shares few credentials among
// its processes; churn of distinct ones (a user namespace for each pod,
// pods coming and going) must not reach the memory bound.
const maxCreds = 1 << 11

// Cred returns p's credentials, nil when no event told them. The caller
// must not modify them: they are shared.
func (p *Proc) Cred() *events.Cred { return p.cred }

func (t *Tree) intern(set NSSet) *NSSet {
	if s, ok := t.nssets[set]; ok {
		return s
	}
	s := &set
	if len(t.nssets) >= maxInterned {
		clear(t.nssets)
	}
	t.nssets[set] = s
	return s
}

// MaxChain bounds how far up the tree a link is checked for a loop: a
// parent further above than that is not linked (see Proc.ParentLoop).
const MaxChain = 4096

// setParent links p under the process ppid (when the tree has it), unless
// that would close a loop: the kernel never makes one, but a recording
// can claim one (100's parent is 200, 200's is 100), and every walk of
// the tree would follow it forever.
func (t *Tree) setParent(p *Proc, ppid uint32) {
	parent := t.procs[ppid]
	p.ParentLoop = parent != nil && !p.canAdopt(parent)
	if p.ParentLoop {
		parent = nil
	}
	if p.parent == parent && p.PPID == ppid {
		return
	}
	if p.PPID != ppid {
		p.pnspid = p.pnspid[:0] // the old parent's
	}
	p.unlink()
	p.PPID = ppid
	if parent != nil {
		p.parent = parent
		p.next = parent.child
		if parent.child != nil {
			parent.child.prev = p
		}
		parent.child = p
	}
}

// canAdopt reports whether p may be linked under parent without making a
// loop: parent is not p nor below it. Only a p with children can close
// one, and those are few (reparenting at an exit, a snapshot's relink);
// a chain over MaxChain deep is refused as one, so that the check is
// bounded.
func (p *Proc) canAdopt(parent *Proc) bool {
	if parent == p {
		return false
	}
	if p.child == nil {
		return true
	}
	a := parent
	for range MaxChain {
		if a == nil {
			return true
		}
		if a == p {
			return false
		}
		a = a.parent
	}
	return false
}

// unlink takes p out of its parent's children.
func (p *Proc) unlink() {
	if p.parent == nil {
		return
	}
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		p.parent.child = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	}
	p.parent, p.prev, p.next = nil, nil, nil
}

// exit marks ev's subject exited and hands its children to the reaper the
// kernel chose.
func (t *Tree) exit(ev *events.Event) {
	p := t.procs[ev.PID]
	if p == nil || !sameProcess(p, ev) {
		return
	}
	t.retire(p, ev.Time, ev.ExitStatus, ev.Reaper)
}

// RepeatedExit reports whether ev is the exit of a process whose exit the
// tree has already applied. Two threads of a process that exit together can
// both find its count of live threads at zero (the kernel side reads it at
// each one's exit tracepoint, after both have counted themselves out), and
// so both report the process's end: seen with Go programs, whose threads
// all run exit_group() at once.
func (t *Tree) RepeatedExit(ev *events.Event) bool {
	if ev.Type != events.TypeExit || ev.Thread || ev.StartBoot == 0 || t.procs[ev.PID] != nil {
		return false
	}
	p := t.lastHolder[ev.PID]
	return p != nil && p.Start == ev.StartBoot
}

// retire moves p from the live processes to the exited ones. Its children
// go to reaper; with reaper 0 (p was its namespace's init) they stay under
// p until the kernel's kill of the namespace reaches them.
func (t *Tree) retire(p *Proc, when int64, status, reaper uint32) {
	if reaper != 0 {
		for c := p.child; c != nil; {
			next := c.next
			t.setParent(c, reaper)
			c = next
		}
	}
	t.unregister(p)
	delete(t.procs, p.PID)
	p.unlink()
	p.Exited, p.ExitTime, p.ExitStatus = true, when, status
	if t.keep <= 0 {
		return
	}
	if len(t.exited) < t.keep {
		t.exited = append(t.exited, p)
	} else {
		old := t.exited[t.next]
		if t.lastHolder[old.PID] == old {
			delete(t.lastHolder, old.PID)
		}
		// Nothing points at it any more, unless children of a dead
		// namespace's init still wait under it.
		if old.child == nil {
			t.free = append(t.free, old)
		}
		t.exited[t.next] = p
		t.next = (t.next + 1) % t.keep
	}
	t.lastHolder[p.PID] = p
}

// RecentExits calls f for each exited process the tree remembers that
// exited at since (Unix ns) or later, oldest first.
func (t *Tree) RecentExits(since int64, f func(p *Proc)) {
	n := len(t.exited)
	for i := range n {
		// Before the ring is full, t.next is 0 and the order is the slice's.
		if p := t.exited[(t.next+i)%n]; p.ExitTime >= since {
			f(p)
		}
	}
}

// Time returns the time of the latest event applied (Unix ns): the instant
// the tree stands at.
func (t *Tree) Time() int64 { return t.time }

// Len returns how many live processes the tree holds.
func (t *Tree) Len() int { return len(t.procs) }

// Namespaces returns how many pid namespaces the tree holds.
func (t *Tree) Namespaces() int { return len(t.namespaces) }

// Get returns the live process with host TGID pid, or nil.
func (t *Tree) Get(pid uint32) *Proc { return t.procs[pid] }

// Namespace returns the pid namespace with that inode, or nil.
func (t *Tree) Namespace(inode uint32) *PidNS { return t.namespaces[inode] }

// Lookup returns the live process whose PID in namespace ns is nr, or nil.
func (ns *PidNS) Lookup(nr uint32) *Proc {
	p := ns.members[nr]
	if p == nil || ns.Level > 0 {
		return p
	}
	// The tree's index holds every live process: one under another
	// level-0 namespace (a recording of another host's) is not this
	// one's, nor one whose own PID list disagrees with its key.
	if p.PidNS(0) != ns || p.nspid[0] != nr {
		return nil
	}
	return p
}

// Root returns the host's pid namespace (level 0), or nil for an empty tree.
func (t *Tree) Root() *PidNS {
	for _, p := range t.procs {
		return p.PidNS(0)
	}
	return nil
}

// LastHolder returns the most recent exited process that had host TGID pid,
// or nil.
func (t *Tree) LastHolder(pid uint32) *Proc { return t.lastHolder[pid] }

// LastHolderIn returns the most recent exited process that was nr in pid
// namespace ns, or nil.
func (t *Tree) LastHolderIn(ns *PidNS, nr uint32) *Proc {
	for i := range t.exited {
		// Newest first: the ring's newest entry is just before next.
		p := t.exited[(t.next-1-i+2*len(t.exited))%len(t.exited)]
		if lvl := p.LevelOf(ns); lvl >= 0 && p.nspid[lvl] == nr {
			return p
		}
	}
	return nil
}

// Levels returns how many pid-namespace levels p has.
func (p *Proc) Levels() int { return len(p.nspid) }

// NSPid returns p's PID at level i (0: the host).
func (p *Proc) NSPid(i int) uint32 { return p.nspid[i] }

// PidNS returns p's pid namespace at level i.
func (p *Proc) PidNS(i int) *PidNS {
	ns := p.ns
	for ns != nil && ns.Level > i {
		ns = ns.Parent
	}
	return ns
}

// LevelOf returns the level at which p is in namespace ns, or -1 when p is
// not inside ns.
func (p *Proc) LevelOf(ns *PidNS) int {
	if ns == nil || ns.Level >= len(p.nspid) || p.PidNS(ns.Level) != ns {
		return -1
	}
	return ns.Level
}

// ParentNSPid returns p's parent's PID at level i, 0 where the parent is
// not in that level's namespace (p is its init, or entered it). A parent
// is always in p's namespace or above it: its levels are a prefix of p's.
func (p *Proc) ParentNSPid(i int) uint32 {
	switch {
	case i == 0:
		return p.PPID
	case p.parent != nil && i < len(p.parent.nspid):
		return p.parent.nspid[i]
	case p.parent == nil && i-1 < len(p.pnspid):
		return p.pnspid[i-1]
	}
	return 0
}

// NS returns p's own pid namespace.
func (p *Proc) NS() *PidNS { return p.ns }

// Namespaces returns the inode of each of p's namespaces, by
// events.NSNames; zeros where unknown.
func (p *Proc) Namespaces() NSSet {
	if p.nsset == nil {
		return NSSet{}
	}
	return *p.nsset
}

// Parent returns p's parent when the tree has it.
func (p *Proc) Parent() *Proc { return p.parent }

// LiveParent is p's parent while it lives; nil once it exited. Children
// of a pid namespace's init stay under it when it exits (reaper 0), until
// the kernel's kill of the namespace reaches them: they are roots of
// what is alive meanwhile, not hidden under the dead.
func (p *Proc) LiveParent() *Proc {
	if p.parent == nil || p.parent.Exited {
		return nil
	}
	return p.parent
}

// Children returns p's children, by host PID.
func (p *Proc) Children() []*Proc {
	n := 0
	for c := p.child; c != nil; c = c.next {
		n++
	}
	if n == 0 {
		return nil
	}
	// Counted first: an init with 10,000 children would otherwise
	// leave 14 outgrown slices behind, at every walk.
	cs := make([]*Proc, 0, n)
	for c := p.child; c != nil; c = c.next {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *Proc) int { return int(a.PID) - int(b.PID) })
	return cs
}

// Argv returns the arguments (allocates; not for hot paths).
func (p *Proc) Argv() []string {
	var ev events.Event
	ev.ArgsLen = uint16(copy(ev.Args[:], p.args))
	return ev.Argv()
}

// PIDsFrom is p's PID at each level from level down, "12573/52/1"; ""
// when p is not visible at level.
func (p *Proc) PIDsFrom(level int) string {
	return string(p.AppendPIDsFrom(nil, level))
}

// AppendPIDsFrom appends PIDsFrom(level) to dst.
func (p *Proc) AppendPIDsFrom(dst []byte, level int) []byte {
	for i := level; i < len(p.nspid); i++ {
		if i > level {
			dst = append(dst, '/')
		}
		dst = strconv.AppendUint(dst, uint64(p.nspid[i]), 10)
	}
	return dst
}

// RawArgs returns p's argv as recorded: NUL-separated and bounded. The
// caller must not modify it.
func (p *Proc) RawArgs() []byte { return p.args }

// CommString returns the comm.
func (p *Proc) CommString() string { return string(p.Comm[:p.CommLen]) }

// Fill writes p into ev as a TypeProc event (the `proc` object) taken at
// time when (Unix ns).
func (p *Proc) Fill(ev *events.Event, when int64) {
	*ev = events.Event{Time: when, Type: events.TypeProc, PID: p.PID, TID: p.PID, PPID: p.PPID, Levels: len(p.nspid),
		UID: p.UID, GID: p.GID, Comm: p.Comm, CommLen: p.CommLen, StartBoot: p.Start}
	copy(ev.NSPid[:], p.nspid)
	for ns := p.ns; ns != nil; ns = ns.Parent {
		ev.PidNS[ns.Level] = ns.Inode
	}
	ev.Start = p.StartTime
	ev.EnteredBy = p.EnteredBy
	ev.Cgroup = p.Cgroup
	ev.OutsideInitCgroup = p.OutsideInitCgroup()
	ev.Zombie = p.Zombie
	if p.Zombie {
		ev.ExitStatus = p.ExitStatus
	}
	for i := range p.nspid {
		ev.NSPPid[i] = p.ParentNSPid(i)
	}
	if p.parent != nil {
		ev.ParentStartBoot = p.parent.Start
	}
	if p.nsset != nil {
		ev.NS = *p.nsset
	}
	if p.cred != nil {
		ev.Cred = *p.cred
	}
	ev.ArgsLen = uint16(copy(ev.Args[:], p.args))
	ev.ArgsTruncated = p.ArgsTruncated
	ev.ExeUnlinked, ev.ExeMemfd = p.ExeUnlinked, p.ExeMemfd
	ev.Findings = p.Findings(ev.Findings)
}

// OutsideInitCgroup reports whether p is in a pid namespace below the
// host's and in another cgroup than the namespace's init: it entered the
// namespace without joining the init's container (nsenter, a sidecar
// sharing the namespace), or the init left. False when either is unknown,
// and for the containers of the pod whose namespace it is.
func (p *Proc) OutsideInitCgroup() bool {
	if p.ns == nil {
		return false
	}
	init := p.ns.Init
	if p.ns.Level == 0 || init == nil || init == p || p.Cgroup == nil || init.Cgroup == nil ||
		p.Cgroup.Path == "" || init.Cgroup.Path == "" || // a path not known is no evidence
		samePod(p.Cgroup, init.Cgroup) { // a pod's containers share its namespace
		return false
	}
	return p.Cgroup.Path != init.Cgroup.Path
}

// FillAncestors writes p's ancestors into ev, parent first, at most max
// (and events.MaxAncestors): each with its host PID, its PID in p's own pid
// namespace where it is visible there, its comm and its start.
func (p *Proc) FillAncestors(ev *events.Event, max int) {
	n := 0
	for a := p.parent; a != nil && n < min(max, events.MaxAncestors); a = a.parent {
		out := &ev.Ancestors[n]
		out.PID, out.StartBoot, out.Comm, out.CommLen = a.PID, a.Start, a.Comm, a.CommLen
		out.NSPid = 0
		if lvl := a.LevelOf(p.ns); lvl >= 0 {
			out.NSPid = a.nspid[lvl]
		}
		n++
	}
	ev.NAncestors = n
}

// Walk calls f for every live process, every parent before its children,
// roots (processes whose parent the tree does not have, or has as exited)
// by PID.
func (t *Tree) Walk(f func(p *Proc, depth int)) {
	// Counted first: on a host whose init the tree does not have, every
	// process can be a root, and growing the list would leave its
	// outgrown copies behind.
	n := 0
	for _, p := range t.procs {
		if p.LiveParent() == nil {
			n++
		}
	}
	roots := make([]*Proc, 0, n)
	for _, p := range t.procs {
		if p.LiveParent() == nil {
			roots = append(roots, p)
		}
	}
	slices.SortFunc(roots, func(a, b *Proc) int { return int(a.PID) - int(b.PID) })
	var visit func(p *Proc, depth int)
	visit = func(p *Proc, depth int) {
		f(p, depth)
		for _, c := range p.Children() {
			visit(c, depth+1)
		}
	}
	for _, r := range roots {
		visit(r, 0)
	}
}

// Relink attaches every process whose parent arrived after it: a snapshot
// lists processes by PID, not parents first. Their origins are then
// marked, parents first.
func (t *Tree) Relink() {
	var orphans []*Proc
	for _, p := range t.procs {
		if p.parent == nil && p.PPID != 0 && t.procs[p.PPID] != nil {
			orphans = append(orphans, p)
		}
	}
	// In PID order: where links would close a loop, the same one is
	// refused whatever the map's order.
	slices.SortFunc(orphans, func(a, b *Proc) int { return int(a.PID) - int(b.PID) })
	for _, p := range orphans {
		t.setParent(p, p.PPID)
	}
	unmarked := false
	for _, p := range t.procs {
		unmarked = unmarked || !p.originKnown && p.parent != nil
	}
	if unmarked {
		t.Walk(func(p *Proc, _ int) {
			if !p.originKnown && p.parent != nil {
				p.markOrigin()
			}
		})
	}
}

// beginResync starts a new generation: processes a snapshot applied after
// it does not mention are retired by endResync.
func (t *Tree) beginResync() uint32 {
	t.gen++
	return t.gen
}

// endResync retires the live processes the snapshot of generation gen did
// not see: they exited while events were lost. Their children are linked
// anew from what the snapshot said.
func (t *Tree) endResync(gen uint32, when int64) {
	for _, p := range t.procs {
		if p.seen != gen {
			t.retire(p, when, 0, 0)
		}
	}
	t.Relink()
}

// Containers returns the containers live processes are in, each cgroup's
// once.
func (t *Tree) Containers() []*events.Container {
	var cs []*events.Container
	seen := make(map[*events.Container]bool)
	for _, p := range t.procs {
		if p.Cgroup != nil && p.Cgroup.Container != nil && !seen[p.Cgroup.Container] {
			seen[p.Cgroup.Container] = true
			cs = append(cs, p.Cgroup.Container)
		}
	}
	return cs
}

// OldestIn returns the live process of container id that started first;
// nil when none lives.
func (t *Tree) OldestIn(id string) *Proc {
	var oldest *Proc
	for _, p := range t.procs {
		if p.Cgroup.In(id) && (oldest == nil || p.Start < oldest.Start || p.Start == oldest.Start && p.PID < oldest.PID) {
			oldest = p
		}
	}
	return oldest
}

// ContainerNS returns the pid namespace of container id: its shallowest
// member's, its init's (the host's for a --pid=host container); nil when
// no live process is in the container.
func (t *Tree) ContainerNS(id string) *PidNS {
	var ns *PidNS
	for _, p := range t.procs {
		if p.Cgroup.In(id) && (ns == nil || p.ns.Level < ns.Level) {
			ns = p.ns
		}
	}
	return ns
}
