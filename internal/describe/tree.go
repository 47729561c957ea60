package describe

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// TreePrinter writes tree's rows: JSON lines, or text with the columns
// asked for (a table with the tree last, as ps f has it).
type TreePrinter struct {
	q     *view.View
	w     *bufio.Writer // JSON lines
	out   io.Writer     // text rows: w, or a table over it
	cols  []Column
	cc    *Context
	json  bool
	args  bool // argv after each process
	level int  // the pid-namespace level PIDs are shown from
	ev    events.Event
	line  []byte
	table *tabwriter.Writer // out, when the rows are a table
}

// NewTreePrinter prints the rows of v's tree to w.
func NewTreePrinter(v *view.View, w *bufio.Writer, cols []Column, json, args bool) *TreePrinter {
	tp := &TreePrinter{q: v, w: w, out: w, cols: cols, json: json, args: args, level: v.Level()}
	if len(cols) > 0 && !json {
		tp.cc = NewContext(v)
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		tp.out, tp.table = tw, tw
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", c.Title)
		}
		fmt.Fprintln(tw, "TREE")
	}
	return tp
}

// Print writes root's row and its subtree's, root a root of the tree shown.
func (tp *TreePrinter) Print(root *pidmap.Proc) { tp.visit(root, "", 0, true) }

// Flush writes out the table, when the rows are one.
func (tp *TreePrinter) Flush() {
	if tp.table != nil {
		tp.table.Flush()
	}
}

// visit writes p's row and its subtree's, p at depth below a root, the
// last of its parent's children shown when last.
func (tp *TreePrinter) visit(p *pidmap.Proc, prefix string, depth int, last bool) {
	if tp.json {
		p.Fill(&tp.ev, tp.q.AsOf)
		tp.line = events.AppendJSON(tp.line[:0], &tp.ev)
		tp.w.Write(tp.line)
	} else {
		branch, childPrefix := "", ""
		if depth > 0 {
			branch, childPrefix = "├─", "│ "
			if last {
				branch, childPrefix = "└─", "  "
			}
		}
		for _, c := range tp.cols {
			// A cell is never empty (Column.Value), so a tab never
			// closes a column early; tabs from a process were escaped.
			fmt.Fprintf(tp.out, "%s\t", c.Value(tp.cc, p))
		}
		// One line, built in one buffer: a tree of 10,000 processes
		// makes no garbage per line.
		line := append(append(tp.line[:0], prefix...), branch...)
		if depth > maxIndent {
			// Deeper, lines say their depth rather than grow: a
			// chain of 100,000 would otherwise take 10 GB.
			line = strconv.AppendInt(append(line, "(depth "...), int64(depth), 10)
			line = append(line, ") "...)
		}
		line = appendLabel(line, p, tp.level)
		if tp.args {
			if a := Args(p); a != "" {
				line = append(append(line, ' '), a...)
			}
		}
		tp.line = append(tp.q.AppendNotes(line, p), '\n')
		tp.out.Write(tp.line)
		if depth < maxIndent {
			prefix += childPrefix
		}
	}
	// The last child shown gets └─, whether or not a later one is hidden.
	children := slices.DeleteFunc(p.Children(), func(c *pidmap.Proc) bool { return !tp.q.Selected(c) })
	for i, c := range children {
		tp.visit(c, prefix, depth+1, i == len(children)-1)
	}
}

// maxIndent is the deepest level text indents (as pstree's width is).
const maxIndent = 100

// appendLabel appends `comm(P0/P1/…)` from level down (and the host PID
// after them when level is not the host's), with the pid namespace named
// where it differs from the parent's.
func appendLabel(dst []byte, p *pidmap.Proc, level int) []byte {
	dst = termsafe.Append(dst, p.Comm[:p.CommLen])
	dst = p.AppendPIDsFrom(append(dst, '('), level)
	if level > 0 {
		dst = strconv.AppendUint(append(dst, ", host "...), uint64(p.PID), 10)
	}
	dst = append(dst, ')')
	if parent := p.Parent(); (parent != nil && parent.NS() != p.NS()) || (parent == nil && p.NS().Level > level) {
		if ino := p.NS().Inode; ino != 0 {
			dst = strconv.AppendUint(append(dst, " [pid:["...), uint64(ino), 10)
			dst = append(dst, "]]"...)
		} else {
			dst = append(dst, " [pid:[?]]"...) // not the caller's to read
		}
	}
	return dst
}
