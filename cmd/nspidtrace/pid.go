package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/nspidtrace/nspidtrace/internal/describe"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

var pidCommand = &command{
	name:     "<pid>",
	synopsis: "nspidtrace [flags] <pid>",
	summary:  "the process at every pid-namespace level, host first",
	about: `Shows one process at every pid-namespace level, host first: its PID, its
parent's PID and the pid namespace at each level. <pid> is read in the
caller's pid namespace, as the kernel would read it (run inside a container,
"nspidtrace 52" still shows the host's PIDs), or in REF's with --pidns, or in
the container's with --container. A thread ID names its process.
Without root it answers from /proc, with the levels visible from here.`,
	examples: `  sudo nspidtrace 12573                          one process at every level
  sudo nspidtrace --pidns 12573 52               PID 52 in 12573's pid namespace
  sudo nspidtrace --container web 1 -o json      a container's init, as a proc object
  sudo nspidtrace --ancestors 12573              and who started it, up to the host's init
  sudo nspidtrace -o wide 12573                  and its capabilities, seccomp, network namespace
`,
	flags: func(fs *flag.FlagSet, o *options) {
		oneShotFlags(fs, o)
		fs.BoolVar(&o.showAncestors, "ancestors", false, "also its ancestors, parent first, up to the host's init")
	},
	run: runPID,
}

// runPID answers `nspidtrace <pid>`.
func runPID(_ context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return usagef("nspidtrace <pid> takes exactly 1 PID, got %q", args)
	}
	pid, err := query.ParsePID("PID", args[0])
	if err != nil {
		return err
	}
	q, err := oneShotQuery(o, pid, stderr)
	if err != nil {
		return err
	}
	p, err := q.Find(pid)
	if err != nil {
		return err
	}

	w := bufio.NewWriter(stdout)
	if o.output == "json" {
		var ev events.Event
		p.Fill(&ev, q.AsOf)
		if o.showAncestors {
			p.FillAncestors(&ev, events.MaxAncestors)
		}
		w.Write(events.AppendJSON(nil, &ev))
		return w.Flush()
	}
	fmt.Fprintf(w, "%s  %s\n", termsafe.String(p.CommString()), describe.Args(p))
	if p.Zombie {
		fmt.Fprintf(w, "zombie: %s; its parent has not reaped it\n", events.WaitStatus(p.ExitStatus))
	}
	if user := describe.UserLine(q, p); user != "" {
		fmt.Fprintf(w, "user   %s\n", user)
	}
	// Columns look up names (netns files, passwd): only when asked for.
	if cols, _ := describe.ParseColumns(o.columns, o.output == "wide"); len(cols) > 0 { // checked by oneShotQuery
		describe.WriteLines(w, describe.NewContext(q), p, cols)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tPID\tPPID\tPIDNS")
	// Every level, host first, also with --pidns or --container: the host
	// PID is what the other tools on the host take.
	for i := 0; i < p.Levels(); i++ {
		ppid := "-"
		if n := p.ParentNSPid(i); n != 0 {
			ppid = fmt.Sprint(n)
		}
		pidns := "?" // not ours to read
		if ns := p.PidNS(i); ns != nil && ns.Inode != 0 {
			pidns = fmt.Sprintf("pid:[%d]", ns.Inode)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", i, p.NSPid(i), ppid, pidns)
	}
	tw.Flush()
	if c := describe.ContainerLine(p); c != "" {
		fmt.Fprintln(w, c)
	}
	if out := q.OutsideContainer(p); out != "" {
		fmt.Fprintln(w, out)
	}
	if from := q.EnteredFrom(p); from != "" {
		fmt.Fprintf(w, "entered pid:[%d] from %s (setns: nsenter, docker exec)\n", p.NS().Inode, from)
	} else if p.OutsideInitCgroup() && q.Container == nil {
		// JSON says outside_init_cgroup; text says it too.
		fmt.Fprintf(w, "not in its init's cgroup: it descends from a process that entered pid:[%d] without joining the container\n", p.NS().Inode)
	}
	describe.WriteFindings(w, p)
	if o.showAncestors {
		describe.WriteAncestors(w, q, p)
	}
	return w.Flush()
}
