// Package watch draws the process tree full screen and keeps it up to date:
// `nspidtrace watch`. What it draws comes from a Source (the live tree, or a
// recording at a time cursor); this package turns a pidmap.Tree into rows,
// and rows and keys into a terminal screen.
//
// The terminal is github.com/gdamore/tcell: terminfo, key decoding, resize
// and restoring the terminal's modes are what a hand-written layer gets
// wrong, and tcell is maintained, tested (its simulation screen drives this
// package's tests) and small beside full frameworks.
//
// Everything in a row that a process controls (comm, argv, container
// names) is made safe for the terminal when drawn, not before: rows keep
// the raw text so that filters match what the process really says.
package watch

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// Highlight is how long a new process, or an exited one, stays marked.
const Highlight = 5 * time.Second

// Selection says which processes are shown and what is said of them.
type Selection interface {
	// Selected reports whether p is shown (with its selected children).
	Selected(p *pidmap.Proc) bool
	// Notes is what a row says of p after its command: its container,
	// how it entered its pid namespace ("" for nothing), already made safe
	// for a terminal (termsafe).
	Notes(p *pidmap.Proc) string
}

// State is what the viewer chose: the level PIDs are read from, a filter,
// folded subtrees.
type State struct {
	// Level is the pid-namespace level the PID column starts at (0: the
	// host's). A process not visible at that level shows its host PID.
	Level int
	// Filter keeps processes whose comm contains it, or with a PID (at
	// any level) equal to it, and their ancestors; "" keeps all.
	Filter string
	// Folded are the processes whose descendants are hidden.
	Folded map[events.Key]bool
}

// Row is one process on screen.
type Row struct {
	Key    events.Key
	Prefix string // the tree drawing before the command
	Comm   string
	Args   string // argv after argv[0], space-separated
	// PIDs are the process's PIDs from the State's level down, "52/1";
	// host first at level 0.
	PIDs    string
	User    string // the user's name on the host, else the UID
	Start   int64  // Unix ns; 0 when unknown
	Notes   string // safe for a terminal already
	Levels  int    // how many pid-namespace levels the process is visible at
	New     bool   // started within Highlight
	Exited  bool   // exited within Highlight
	Flagged bool   // it has findings (docs/findings.md): marked "!"
	Exit    string // how it exited: "exit 7", "signal 9 (SIGKILL)"
	Hidden  int    // descendants hidden by folding
	Context bool   // shown only as an ancestor of a filter match
}

// Rows lists the processes tree holds that sel selects, as the tree is
// drawn: each root (a process whose parent is not shown) by host PID, then
// its children by host PID, with processes that exited since now-Highlight
// below their parent (or as roots). now is the instant the tree stands at
// (Unix ns): the wall clock when live, the cursor in a recording.
func Rows(tree *pidmap.Tree, sel Selection, st *State, now int64, names map[uint32]string) []Row {
	b := builder{sel: sel, st: st, now: now, names: names, ghosts: map[uint32][]*pidmap.Proc{}, kept: map[*pidmap.Proc]bool{},
		rows: make([]Row, 0, tree.Len())}
	if pid, err := strconv.ParseUint(st.Filter, 10, 32); err == nil {
		b.filterPID = uint32(pid)
	}
	b.filterComm = strings.ToLower(st.Filter)

	var roots []*pidmap.Proc
	tree.Walk(func(p *pidmap.Proc, _ int) {
		if sel.Selected(p) && (p.LiveParent() == nil || !sel.Selected(p.LiveParent())) {
			roots = append(roots, p)
		}
	})
	tree.RecentExits(now-int64(Highlight), func(p *pidmap.Proc) {
		if !sel.Selected(p) {
			return
		}
		if parent := tree.Get(p.PPID); parent != nil && sel.Selected(parent) {
			b.ghosts[p.PPID] = append(b.ghosts[p.PPID], p)
		} else {
			roots = append(roots, p)
		}
	})
	for _, r := range roots {
		if b.keep(r) {
			b.visit(r, "", 0, true)
		}
	}
	return b.rows
}

type builder struct {
	sel        Selection
	st         *State
	now        int64
	names      map[uint32]string
	ghosts     map[uint32][]*pidmap.Proc // exited processes, by their parent's host PID
	filterPID  uint32
	filterComm string
	kept       map[*pidmap.Proc]bool // keep's answers
	rows       []Row
}

// maxIndent is the deepest level rows indent: deeper, a row says its
// depth rather than grow (a recording's 100,000-deep chain would
// otherwise take gigabytes of prefixes).
const maxIndent = 100

// visit adds p's row and its subtree's.
func (b *builder) visit(p *pidmap.Proc, prefix string, depth int, last bool) {
	branch, childPrefix := "", ""
	if depth > 0 {
		branch, childPrefix = "├─", "│ "
		if last {
			branch, childPrefix = "└─", "  "
		}
	}
	if depth >= maxIndent {
		childPrefix = ""
	}
	if depth > maxIndent {
		branch += "(depth " + strconv.Itoa(depth) + ") "
	}
	r := b.row(p, prefix+branch)
	r.Context = !b.matches(p)
	children := b.children(p)
	if b.st.Folded[r.Key] {
		r.Hidden = countAll(children)
		children = nil
	}
	b.rows = append(b.rows, r)
	for i, c := range children {
		b.visit(c, prefix+childPrefix, depth+1, i == len(children)-1)
	}
}

// children are p's children that are shown: selected and, with a filter,
// matching it or with a match below them. Processes that exited are last.
func (b *builder) children(p *pidmap.Proc) []*pidmap.Proc {
	if p.Exited {
		return nil
	}
	var cs []*pidmap.Proc
	for _, c := range p.Children() {
		if b.sel.Selected(c) && b.keep(c) {
			cs = append(cs, c)
		}
	}
	for _, c := range b.ghosts[p.PID] {
		if b.keep(c) {
			cs = append(cs, c)
		}
	}
	return cs
}

// keep reports whether p is shown under the filter: it matches, or a
// process below it does.
func (b *builder) keep(p *pidmap.Proc) bool {
	if !b.filtering() {
		return true
	}
	if k, ok := b.kept[p]; ok {
		return k
	}
	k := b.matches(p) || len(b.children(p)) > 0
	b.kept[p] = k
	return k
}

func (b *builder) filtering() bool { return b.st.Filter != "" }

// matches reports whether p passes the filter (all do without one).
func (b *builder) matches(p *pidmap.Proc) bool {
	if !b.filtering() {
		return true
	}
	if b.filterPID != 0 {
		for i := range p.Levels() {
			if p.NSPid(i) == b.filterPID {
				return true
			}
		}
	}
	return strings.Contains(strings.ToLower(p.CommString()), b.filterComm)
}

// countAll counts ps and their live descendants.
func countAll(ps []*pidmap.Proc) int {
	n := 0
	for _, p := range ps {
		n++
		if !p.Exited {
			n += countAll(p.Children())
		}
	}
	return n
}

func (b *builder) row(p *pidmap.Proc, prefix string) Row {
	r := Row{
		Key:     events.Key{PID: p.PID, Start: p.Start},
		Prefix:  prefix,
		Comm:    p.CommString(),
		PIDs:    PIDsFrom(p, b.st.Level),
		User:    b.names[p.UID],
		Start:   p.StartTime,
		Notes:   b.sel.Notes(p),
		Levels:  p.Levels(),
		New:     p.StartTime != 0 && p.StartTime >= b.now-int64(Highlight),
		Exited:  p.Exited,
		Flagged: p.Flagged(),
	}
	if r.User == "" {
		r.User = strconv.FormatUint(uint64(p.UID), 10)
	}
	r.Args = argsAfterFirst(p.RawArgs())
	if argv0 := firstArg(p.RawArgs()); argv0 != "" && !namesComm(argv0, r.Comm) {
		// argv[0] is another name than the executable's (exec -a, a
		// process masquerading as [kworker/0:9]): show it too.
		r.Args = strings.TrimSpace(argv0 + " " + r.Args)
	}
	if p.Exited {
		r.Exit = events.WaitStatus(p.ExitStatus).Brief()
	}
	return r
}

// firstArg is argv[0] of a NUL-separated argv.
func firstArg(raw []byte) string {
	first, _, _ := bytes.Cut(raw, []byte{0})
	return string(first)
}

// namesComm reports whether argv0 is the name comm was made from: its base
// name, which the kernel cuts to 15 bytes.
func namesComm(argv0, comm string) bool {
	base := argv0[strings.LastIndexByte(argv0, '/')+1:]
	return base == comm || len(comm) == events.CommLen-1 && strings.HasPrefix(base, comm)
}

// argsAfterFirst is a NUL-separated argv without argv[0], space-separated.
func argsAfterFirst(raw []byte) string {
	_, rest, ok := bytes.Cut(raw, []byte{0})
	if !ok {
		return ""
	}
	rest = bytes.TrimRight(rest, "\x00")
	return strings.ReplaceAll(string(rest), "\x00", " ")
}

// PIDsFrom is p's PID at each level from level down, "12573/52/1"; its
// host PID in parentheses where p is not visible at level.
func PIDsFrom(p *pidmap.Proc, level int) string {
	if pids := p.PIDsFrom(level); pids != "" {
		return pids
	}
	return "(" + strconv.FormatUint(uint64(p.PID), 10) + ")"
}

// Age says how long ago start was, in one unit: 42s, 7m, 3h, 12d.
func Age(start, now int64) string {
	if start == 0 {
		return "-"
	}
	d := time.Duration(max(now-start, 0))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
