package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

func runTree(ctx context.Context, common commonFlags, args []string, stdout, stderr io.Writer) error {
	pids, log, ref, err := parseQuery("tree", &common, args, 0, 1, stdout, stderr)
	if err != nil {
		return err
	}
	var rootPID uint32
	if len(pids) == 1 {
		rootPID = pids[0]
	}
	tree, err := loadTree(common, log)
	if err != nil {
		return err
	}
	if ref, err = refInTree(common, tree, ref); err != nil {
		return err
	}

	// What is shown: REF's processes, seen from REF's level; or all from
	// the host's. With a PID, only its subtree.
	var view *pidmap.PidNS
	if ref != 0 || rootPID != 0 {
		if view, err = viewNamespace(tree, ref, common.from != ""); err != nil {
			return err
		}
	}
	selected := func(p *pidmap.Proc) bool { return ref == 0 || p.LevelOf(view) >= 0 }
	if common.container != "" {
		ids, id, ns, err := containerView(tree, common.container, common.from != "")
		if err != nil {
			return err
		}
		if ref == 0 {
			view, ref = ns, ns.Inode
		}
		inView := selected
		selected = func(p *pidmap.Proc) bool { return ids[p] == id && inView(p) }
	}
	var roots []*pidmap.Proc
	if rootPID != 0 {
		root, err := findProc(tree, view, rootPID)
		if err != nil {
			return err
		}
		roots = []*pidmap.Proc{root}
		if ref == 0 {
			view = nil // show every level of the subtree
		}
	} else {
		// A process whose parent is outside the selection is a root of
		// its own: a shell from `docker exec` shows up beside the init.
		tree.Walk(func(p *pidmap.Proc, _ int) {
			if selected(p) && (p.Parent() == nil || !selected(p.Parent())) {
				roots = append(roots, p)
			}
		})
	}
	level := 0
	if view != nil && ref != 0 {
		level = view.Level
	}

	w := bufio.NewWriterSize(stdout, 64<<10)
	var ev events.Event
	var line []byte
	var visit func(p *pidmap.Proc, prefix string, last, top bool)
	visit = func(p *pidmap.Proc, prefix string, last, top bool) {
		if common.output == "json" {
			p.Fill(&ev)
			line = events.AppendJSON(line[:0], &ev)
			w.Write(line)
		} else {
			branch, childPrefix := "", ""
			if !top {
				branch, childPrefix = "├─", "│ "
				if last {
					branch, childPrefix = "└─", "  "
				}
			}
			fmt.Fprintf(w, "%s%s%s\n", prefix, branch, label(p, level))
			prefix += childPrefix
		}
		children := p.Children()
		for i, c := range children {
			if selected(c) {
				visit(c, prefix, i == len(children)-1, false)
			}
		}
	}
	for _, r := range roots {
		visit(r, "", true, true)
	}
	return w.Flush()
}

// label is `comm(P0/P1/…)` from level down, with the pid namespace named
// where it differs from the parent's.
func label(p *pidmap.Proc, level int) string {
	var b strings.Builder
	b.WriteString(p.CommString())
	b.WriteByte('(')
	for i := level; i < p.Levels(); i++ {
		if i > level {
			b.WriteByte('/')
		}
		fmt.Fprint(&b, p.NSPid(i))
	}
	b.WriteByte(')')
	if parent := p.Parent(); (parent != nil && parent.NS() != p.NS()) || (parent == nil && p.NS().Level > level) {
		fmt.Fprintf(&b, " [pid:[%d]]", p.NS().Inode)
	}
	return b.String()
}

func formatTime(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339Nano)
}
