package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"

	"github.com/nspidtrace/nspidtrace/internal/describe"
	"github.com/nspidtrace/nspidtrace/internal/query"
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

	roots, err := q.Roots(rootPID)
	if err != nil {
		return err
	}
	if len(roots) == 0 && q.NetNS != 0 {
		return notFoundError{Err: fmt.Errorf("--netns %s: no process is in network namespace net:[%d] now", o.netns, q.NetNS)}
	}
	if len(roots) == 0 && o.flagged {
		return notFoundError{Err: errors.New("--flagged: no process shown has a finding")}
	}

	w := bufio.NewWriterSize(stdout, 64<<10)
	tp := describe.NewTreePrinter(q, w, cols, o.output == "json", o.showArgs)
	for _, r := range roots {
		tp.Print(r)
	}
	tp.Flush()
	return w.Flush()
}
