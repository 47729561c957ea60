// Package story tells a process's life, and a container's, from the events
// of a recording: one fact per line, in time order (`nspidtrace story`,
// and the report's stories). A Collector is fed every event of a replay,
// after the tree has applied it, and keeps the facts of the processes it
// follows; Containers gathers a container's generations and the processes
// that entered it.
package story

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// MaxFacts bounds one process's facts: a process that renames itself in
// a loop tells its first MaxFacts, then how many more there were.
const MaxFacts = 2000

// Fact is one thing that happened to a process.
type Fact struct {
	Time int64  // Unix ns
	Kind string // born, alive, exec, rename, cred, setns, unshare, sent, received, children, finding, exit
	Text string // one line, raw: what processes chose is in it, escape it for terminals
	// Other is the process on the other side: a signal's sender or
	// target, the parent at birth.
	Other events.Key
	// Repeats counts the same fact told again right after it (runc drops
	// its bounding set one capability at a time).
	Repeats int
}

// Story is one process's life as the recording tells it.
type Story struct {
	Key    events.Key
	Parent events.Key
	Comm   string // its last
	Depth  int    // below the process asked about (--descendants)
	Facts  []Fact
	// Dropped counts facts past MaxFacts.
	Dropped int

	children       childCount
	cred           events.IDs
	credKnown      bool
	found          events.FindingSet
	exited, closed bool
}

// childCount collapses a process's children into one fact.
type childCount struct {
	forked, running int
	byEnd           map[string]int // "exited with 0" -> how many
	last            int64
}

// Collector keeps the stories of the processes it follows.
type Collector struct {
	// Descendants: follow the children of followed processes too, born
	// later, each with a story of its own.
	Descendants bool
	// All: follow every process, from its first event (the report).
	All     bool
	stories map[events.Key]*Story
	order   []*Story
	tree    *pidmap.Tree
	// forkedBy holds the children of followed processes, by the parent
	// that forked them: one reparented before it exits is still counted
	// as its first parent's.
	forkedBy map[events.Key]events.Key
}

// NewCollector follows the processes keys names, in tree (the replay's).
func NewCollector(tree *pidmap.Tree, keys ...events.Key) *Collector {
	c := &Collector{stories: map[events.Key]*Story{}, tree: tree, forkedBy: map[events.Key]events.Key{}}
	for _, k := range keys {
		c.follow(k, events.Key{}, 0)
	}
	return c
}

func (c *Collector) follow(k, parent events.Key, depth int) *Story {
	if s := c.stories[k]; s != nil {
		return s
	}
	s := &Story{Key: k, Parent: parent, Depth: depth}
	c.stories[k] = s
	c.order = append(c.order, s)
	return s
}

// Stories are the stories gathered, the processes asked about first, then
// descendants in the order they were born.
func (c *Collector) Stories() []*Story {
	for _, s := range c.order {
		s.closeChildren()
	}
	return c.order
}

// Event takes one event of the replay, which the tree has applied.
func (c *Collector) Event(ev *events.Event) {
	key := events.Key{PID: ev.PID, Start: ev.StartBoot}
	if ev.Type == events.TypeSignal {
		sender := events.Key{PID: ev.Sig.Sender.PID, Start: ev.Sig.Sender.StartBoot}
		if s := c.stories[sender]; s != nil && sender != key {
			s.add(Fact{Time: ev.Time, Kind: "sent", Other: key,
				Text: fmt.Sprintf("sent %s to %s(%d) %s%s", events.SignalName(ev.Sig.Number), string(ev.Comm[:ev.CommLen]), ev.PID, key, signalResult(ev.Sig.Result))})
		}
	}
	if ev.Type == events.TypeFork && !ev.Thread {
		parent := events.Key{PID: ev.PPID, Start: ev.ParentStartBoot}
		if ps := c.stories[parent]; ps != nil {
			c.forkedBy[key] = parent
			ps.children.forked++
			ps.children.running++
			ps.children.last = ev.Time
			if c.Descendants {
				c.follow(key, parent, ps.Depth+1)
			}
		}
	}
	if parent, ok := c.forkedBy[key]; ok && ev.Type == events.TypeExit && !ev.Thread {
		delete(c.forkedBy, key)
		c.stories[parent].childExited(ev)
	}
	s := c.stories[key]
	if s == nil && c.All && key.PID != 0 && !ev.Thread && ev.Type != events.TypeLost && ev.Type != events.TypeEnd {
		parent := events.Key{PID: ev.PPID, Start: ev.ParentStartBoot}
		s = c.follow(key, parent, 0)
	}
	if s == nil || ev.Thread {
		return
	}
	s.Comm = string(ev.Comm[:ev.CommLen])
	p := c.tree.Subject(ev)
	if (ev.Type == events.TypeFork || ev.Type == events.TypeProc) && ev.Cred.Known && !s.credKnown {
		s.cred, s.credKnown = ev.Cred.IDs, true
	}
	switch ev.Type {
	case events.TypeFork:
		s.add(Fact{Time: ev.Time, Kind: "born", Other: s.Parent, Text: c.birth(ev, p)})
	case events.TypeProc:
		if len(s.Facts) == 0 {
			s.add(Fact{Time: ev.Time, Kind: "alive", Text: "alive at the first snapshot (the recording's start, or now, live): " + c.birth(ev, p) + "; runs " + argv(ev)})
		}
	case events.TypeExec:
		text := fmt.Sprintf("exec %s %s", ev.Filename[:ev.FilenameLen], argv(ev))
		if change := s.credChange(&ev.Cred.IDs); change != "" {
			text += "; " + change
		}
		s.add(Fact{Time: ev.Time, Kind: "exec", Text: text})
	case events.TypeRename:
		s.add(Fact{Time: ev.Time, Kind: "rename", Text: fmt.Sprintf("renamed %q -> %q", ev.OldComm[:ev.OldCommLen], ev.Comm[:ev.CommLen])})
	case events.TypeCred:
		s.credKnown, s.cred = true, ev.OldIDs
		s.add(Fact{Time: ev.Time, Kind: "cred", Text: events.SyscallName(ev.Syscall) + ": " + s.credChange(&ev.Cred.IDs)})
	case events.TypeSetns, events.TypeUnshare:
		s.add(Fact{Time: ev.Time, Kind: ev.Type.String(), Text: nsChange(ev)})
	case events.TypeSignal:
		sender := events.Key{PID: ev.Sig.Sender.PID, Start: ev.Sig.Sender.StartBoot}
		s.add(Fact{Time: ev.Time, Kind: "received", Other: sender,
			Text: fmt.Sprintf("received %s from %s(%d) %s%s", events.SignalName(ev.Sig.Number), string(ev.Sig.Sender.Comm[:ev.Sig.Sender.CommLen]), sender.PID, sender, signalResult(ev.Sig.Result))})
	case events.TypeExit:
		s.exited = true
		text := events.WaitStatus(ev.ExitStatus).String()
		if ev.Reaper != 0 {
			text += fmt.Sprintf("; its children go to host PID %d", ev.Reaper)
		} else if ev.NSInit() {
			text += fmt.Sprintf("; its pid namespace pid:[%d] ends with it", ev.PidNS[ev.Levels-1])
		}
		s.add(Fact{Time: ev.Time, Kind: "exit", Text: text})
	}
	if p != nil {
		s.noteFindings(ev.Time, p)
	}
}

// birth describes how ev's subject came to be: its PIDs, its namespace,
// its parent, and how it entered its pid namespace.
func (c *Collector) birth(ev *events.Event, p *pidmap.Proc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "PID %s in pid:[%d]", pids(ev), ev.PidNS[ev.Levels-1])
	if ev.PPID != 0 {
		parent := c.tree.Get(ev.PPID)
		name := ""
		if parent != nil {
			name = parent.CommString()
		}
		fmt.Fprintf(&b, ", child of %s(%d) %s", name, ev.PPID, events.Key{PID: ev.PPID, Start: ev.ParentStartBoot})
	}
	if p != nil && p.Entered() {
		fmt.Fprintf(&b, "; entered pid:[%d] from outside it (setns: nsenter, docker exec)", p.NS().Inode)
	}
	if ev.Cgroup != nil && ev.Cgroup.Container != nil {
		fmt.Fprintf(&b, "; in container %s", ev.Cgroup.Container.Label())
	}
	return b.String()
}

func (s *Story) add(f Fact) {
	if n := len(s.Facts); n > 0 && s.Facts[n-1].Kind == f.Kind && s.Facts[n-1].Text == f.Text && s.Facts[n-1].Other == f.Other {
		s.Facts[n-1].Repeats++
		return
	}
	if len(s.Facts) >= MaxFacts {
		s.Dropped++
		return
	}
	s.Facts = append(s.Facts, f)
}

// credChange says what changed from the credentials the story knew to
// ids; "" at the first it learns of, or for no change.
func (s *Story) credChange(ids *events.IDs) string {
	before, known := s.cred, s.credKnown
	s.cred, s.credKnown = *ids, true
	if !known {
		return ""
	}
	var parts []string
	for _, name := range events.ChangedIDs(&before, ids) {
		switch name {
		case "uid":
			parts = append(parts, fmt.Sprintf("uid %d -> %d", before.UID, ids.UID))
		case "euid":
			parts = append(parts, fmt.Sprintf("euid %d -> %d", before.EUID, ids.EUID))
		case "gid":
			parts = append(parts, fmt.Sprintf("gid %d -> %d", before.GID, ids.GID))
		case "egid":
			parts = append(parts, fmt.Sprintf("egid %d -> %d", before.EGID, ids.EGID))
		default:
			parts = append(parts, name+" changed")
		}
	}
	return strings.Join(parts, ", ")
}

// noteFindings adds a fact for each finding p shows that the story has
// not told yet.
func (s *Story) noteFindings(when int64, p *pidmap.Proc) {
	if !p.Flagged() {
		return
	}
	for _, f := range p.Findings(nil) {
		if !s.found.Has(f.Name) {
			s.found = s.found.With(f.Name)
			s.add(Fact{Time: when, Kind: "finding", Text: f.Name.String() + ": " + f.Reason})
		}
	}
}

func (s *Story) childExited(ev *events.Event) {
	if s.children.byEnd == nil {
		s.children.byEnd = map[string]int{}
	}
	s.children.running--
	s.children.byEnd[events.WaitStatus(ev.ExitStatus).String()]++
	s.children.last = ev.Time
}

// closeChildren adds the children's fact, once: "forked 1,204 children:
// 1,190 exited with 0, 14 running".
func (s *Story) closeChildren() {
	ch := &s.children
	if s.closed || ch.forked == 0 {
		return
	}
	s.closed = true
	ends := make([]string, 0, len(ch.byEnd)+1)
	for end, n := range ch.byEnd {
		ends = append(ends, fmt.Sprintf("%s %s", count(n), end))
	}
	slices.Sort(ends)
	if ch.running > 0 {
		ends = append(ends, count(ch.running)+" still running")
	}
	noun := "children"
	if ch.forked == 1 {
		noun = "child"
	}
	fact := Fact{Time: ch.last, Kind: "children", Text: fmt.Sprintf("forked %s %s: %s", count(ch.forked), noun, strings.Join(ends, ", "))}
	// Before its exit, if it has one: the children were its.
	i := len(s.Facts)
	if s.exited && i > 0 && s.Facts[i-1].Kind == "exit" {
		i--
	}
	s.Facts = slices.Insert(s.Facts, i, fact)
}

// count writes n with thousands separated: 1,204.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func pids(ev *events.Event) string {
	parts := make([]string, ev.Levels)
	for i := range ev.Levels {
		parts[i] = fmt.Sprint(ev.NSPid[i])
	}
	return strings.Join(parts, "/")
}

func argv(ev *events.Event) string {
	args := ev.Argv()
	if ev.ArgsTruncated {
		args = append(args, "…")
	}
	return fmt.Sprintf("%q", args)
}

func signalResult(r int32) string {
	if r == 0 {
		return ""
	}
	return " (" + events.SignalResult(r) + ")"
}

// nsChange says what a setns or unshare changed.
func nsChange(ev *events.Event) string {
	if ev.Ret < 0 {
		return fmt.Sprintf("%s failed (errno %d)", ev.Type, -ev.Ret)
	}
	var parts []string
	for k, name := range events.NSNames {
		if ev.OldNS[k] != ev.NS[k] {
			parts = append(parts, fmt.Sprintf("%s %d -> %d", name, ev.OldNS[k], ev.NS[k]))
		}
	}
	if len(parts) == 0 {
		return ev.Type.String() + ": no namespace changed"
	}
	return ev.Type.String() + ": " + strings.Join(parts, ", ")
}
