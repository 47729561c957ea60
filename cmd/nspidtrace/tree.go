package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/nspidtrace/nspidtrace/internal/describe"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

var treeCommand = &command{
	name:     "tree",
	synopsis: "nspidtrace [flags] tree [<pid>]",
	summary:  "the process tree with every process's PID at each level",
	about: `Draws the process tree, one line per process: comm(PID/PID/…) with its PID
at each level from the viewer's down, and [pid:[INODE]] where a process's
pid namespace differs from its parent's. With <pid>, only its subtree.
With --pidns or --container, PIDs are shown as that namespace sees them,
then the host PID: sleep(1, host 12573); a process whose parent is outside
it is a root of its own: a shell from docker exec or nsenter shows up beside
the container's init. A container's processes are those in its cgroup;
others in its pid namespace are shown marked.`,
	examples: `  sudo nspidtrace tree --container web                 a container's processes
  sudo nspidtrace tree --pidns /proc/12573/ns/pid       the processes in a pid namespace
  sudo nspidtrace tree 12573 -o json | jq -c '{nspid, args}'
  sudo nspidtrace tree --columns huser,caps,netns -a    who runs as whom, with what
  nspidtrace --from incident.ndjson --at +90s tree     the tree 90 s into a recording
`,
	flags: func(fs *flag.FlagSet, o *options) {
		oneShotFlags(fs, o)
		flaggedFlag(fs, o, "only processes with findings (masquerade, fileless, privilege-gain, entered, ...: docs/findings.md), and their ancestors")
	},
	run: runTree,
}

// runTree answers `nspidtrace tree [<pid>]`.
func runTree(_ context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		return usagef("tree takes at most 1 PID, got %q", args)
	}
	var rootPID uint32
	var err error
	if len(args) == 1 {
		if rootPID, err = query.ParsePID("PID", args[0]); err != nil {
			return err
		}
	}
	cols, err := describe.ParseColumns(o.columns, o.output == "wide")
	if err != nil {
		return err
	}
	// The args column is the tree's last: argv after each process, as -a.
	if i := slices.IndexFunc(cols, func(c describe.Column) bool { return c.Name == "args" }); i >= 0 {
		cols = slices.Delete(slices.Clone(cols), i, i+1)
		o.showArgs = true
	}
	o.noArgs = o.output != "json" && !o.showArgs
	q, err := oneShotQuery(o, 0, stderr)
	if err != nil {
		return err
	}

	var roots []*pidmap.Proc
	if rootPID != 0 {
		root, err := q.Find(rootPID)
		if err != nil {
			return err
		}
		roots = []*pidmap.Proc{root}
	} else {
		// A process whose parent is outside the selection is a root of
		// its own: a shell from `docker exec` shows up beside the init.
		// Every process may be one (sized so the list never grows).
		roots = make([]*pidmap.Proc, 0, q.Tree.Len())
		q.Tree.Walk(func(p *pidmap.Proc, _ int) {
			if q.Selected(p) && (p.LiveParent() == nil || !q.Selected(p.LiveParent())) {
				roots = append(roots, p)
			}
		})
	}
	if len(roots) == 0 && q.NetNS != 0 {
		return notFoundError{Err: fmt.Errorf("--netns %s: no process is in network namespace net:[%d] now", o.netns, q.NetNS)}
	}
	if len(roots) == 0 && o.flagged {
		return notFoundError{Err: errors.New("--flagged: no process shown has a finding")}
	}

	w := bufio.NewWriterSize(stdout, 64<<10)
	tp := &treePrinter{q: q, w: w, out: w, cols: cols, json: o.output == "json", args: o.showArgs, level: q.Level()}
	// With columns, the rows are a table with the tree last, as ps f has it.
	var tw *tabwriter.Writer
	if len(cols) > 0 && !tp.json {
		tp.cc = describe.NewContext(q)
		tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		tp.out = tw
		for _, c := range cols {
			fmt.Fprintf(tw, "%s\t", c.Title)
		}
		fmt.Fprintln(tw, "TREE")
	}
	for _, r := range roots {
		tp.visit(r, "", 0, true)
	}
	if tw != nil {
		tw.Flush()
	}
	return w.Flush()
}

// treePrinter writes a tree's rows: JSON lines, or text with the columns
// asked for.
type treePrinter struct {
	q     *view.View
	w     *bufio.Writer // JSON lines
	out   io.Writer     // text rows: w, or a table over it
	cols  []describe.Column
	cc    *describe.Context
	json  bool
	args  bool // argv after each process
	level int  // the pid-namespace level PIDs are shown from
	ev    events.Event
	line  []byte
}

// visit writes p's row and its subtree's, p at depth below a root, the
// last of its parent's children shown when last.
func (tp *treePrinter) visit(p *pidmap.Proc, prefix string, depth int, last bool) {
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
			if a := describe.Args(p); a != "" {
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
