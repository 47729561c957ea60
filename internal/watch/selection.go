package watch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// What a command's view selects, as watch draws it, and what the details
// screen says of one process.

// ViewSelection is a view's selection, narrowed to a subtree for <pid>.
type ViewSelection struct {
	View *view.View
	Root *pidmap.Proc // nil: no <pid>
}

func (s ViewSelection) Selected(p *pidmap.Proc) bool {
	return s.View.Selected(p) && (s.Root == nil || under(s.View.Tree, p, s.Root))
}

func (s ViewSelection) Notes(p *pidmap.Proc) string {
	return strings.TrimSpace(string(s.View.AppendNotes(nil, p)))
}

// under reports whether p is root or descends from it; an exited p from
// the parent it had.
func under(tree *pidmap.Tree, p, root *pidmap.Proc) bool {
	if p == root {
		return true
	}
	for a := parentOf(tree, p); a != nil; a = a.Parent() {
		if a == root {
			return true
		}
	}
	return false
}

// parentOf is p's parent in tree; for an exited p, the parent it had.
func parentOf(tree *pidmap.Tree, p *pidmap.Proc) *pidmap.Proc {
	if p.Exited {
		return tree.Get(p.PPID)
	}
	return p.Parent()
}

// FrameOf builds a frame of tree as sel shows it, at instant now.
func FrameOf(tree *pidmap.Tree, sel ViewSelection, st *State, now int64, names map[uint32]string) Frame {
	f := Frame{Processes: tree.Len(), Namespaces: tree.Namespaces(), Now: now, Title: sel.title()}
	f.Rows = Rows(tree, sel, st, now, names)
	return f
}

// title names what is watched.
func (s ViewSelection) title() string {
	var t string
	switch q := s.View; {
	case q.Container != nil:
		t = "container " + termsafe.String(q.Container.Label())
		if q.NS != nil && q.NS.Level > 0 {
			t += fmt.Sprintf(" pid:[%d]", q.NS.Inode)
		}
	case q.Narrowed:
		t = fmt.Sprintf("pid:[%d]", q.NS.Inode)
	default:
		t = "all processes"
	}
	if s.Root != nil {
		t += fmt.Sprintf(", %s(%d) and its descendants", termsafe.String(s.Root.CommString()), s.Root.PID)
	}
	return t
}

// Details describes the process key of tree, as of when: its proc object,
// its exit, and its ancestors.
func Details(tree *pidmap.Tree, key events.Key, when int64) []string {
	p := tree.Get(key.PID)
	if p == nil || p.Start != key.Start {
		if p = tree.LastHolder(key.PID); p == nil || p.Start != key.Start {
			return []string{fmt.Sprintf("process %d is no longer known", key.PID)}
		}
	}
	var ev events.Event
	p.Fill(&ev, when)
	lines := []string{fmt.Sprintf("%s, host PID %d", p.CommString(), p.PID)}
	if p.Exited {
		lines = append(lines, fmt.Sprintf("exited at %s: %s", pidmap.FormatTime(p.ExitTime), events.WaitStatus(p.ExitStatus)))
	}
	if fs := p.Findings(nil); len(fs) > 0 {
		lines = append(lines, "", "findings (docs/findings.md):")
		for _, f := range fs {
			lines = append(lines, fmt.Sprintf("  %s since %s: %s", f.Name, pidmap.FormatTime(f.Time), f.Reason))
		}
	}
	lines = append(lines, "", "its proc object:")
	lines = append(lines, fields(events.AppendJSON(nil, &ev))...)
	lines = append(lines, "", "ancestors, parent first:")
	a := parentOf(tree, p)
	if a == nil {
		lines = append(lines, fmt.Sprintf("  host PID %d, not in the tree", p.PPID))
	}
	for ; a != nil; a = a.Parent() {
		lines = append(lines, "  "+a.CommString()+"("+a.PIDsFrom(0)+")")
	}
	return lines
}

// fields lists a JSON object's members one per line, "  key: value", in
// their order, each value compact.
func fields(object []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(object))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return []string{string(object)}
	}
	var lines []string
	for dec.More() {
		key, err := dec.Token()
		var value json.RawMessage
		if err == nil {
			err = dec.Decode(&value)
		}
		if err != nil {
			break
		}
		lines = append(lines, fmt.Sprintf("  %-22s %s", fmt.Sprint(key)+":", value))
	}
	return lines
}
