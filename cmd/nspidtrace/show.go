package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// snapshotTree builds the process tree from the kernel's task iterator or,
// without the privileges for BPF, from /proc (saying so on stderr; then the
// tree holds only processes whose namespaces the caller may read).
func snapshotTree(log zerolog.Logger) (*pidmap.Tree, error) {
	boot, err := loader.BootToUnix()
	if err != nil {
		return nil, err
	}
	dec := events.Decoder{BootToUnix: boot}
	tree := pidmap.NewTree(0)
	var ev events.Event
	start := time.Now()
	defer func() {
		log.Debug().Dur("took", time.Since(start)).Int("processes", tree.Len()).Msg("snapshot of the kernel's tasks")
	}()
	err = loader.ReadSnapshot(func(raw []byte) error {
		if err := dec.Decode(raw, &ev); err != nil {
			return err
		}
		tree.Apply(&ev)
		return nil
	})
	if errors.Is(err, loader.ErrNoPrivileges) {
		log.Warn().Msg("no privileges for BPF: answering from /proc, with only the pid-namespace levels visible from here (run as root for every level)")
		return pidmap.FromProc(pidmap.ProcRoot)
	}
	if err != nil {
		return nil, err
	}
	tree.Relink()
	return tree, nil
}

// loadTree builds the tree <pid> and tree answer from: the live kernel's,
// or with --from the recording's as of --at.
func loadTree(common commonFlags, log zerolog.Logger) (*pidmap.Tree, error) {
	// A one-shot answer holds at most the kernel's BTF and the tree (a
	// recording is streamed): no garbage collection is worth its time here
	// (measured: 5 of 56 ms).
	debug.SetGCPercent(-1)
	if common.from == "" {
		if common.at != "" {
			return nil, usagef("--at goes with --from")
		}
		return snapshotTree(log)
	}
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	if _, err := replay(common, log, tree, nil); err != nil {
		return nil, err
	}
	return tree, nil
}

// replay reads --from up to --at into tree, calling each with every event.
func replay(common commonFlags, log zerolog.Logger, tree *pidmap.Tree, each func(*events.Event, []byte) error) (*pidmap.Replay, error) {
	at, err := pidmap.ParseAt(common.at)
	if err != nil {
		return nil, usagef("bad --at: %v", err)
	}
	f, err := os.Open(common.from)
	if err != nil {
		return nil, fmt.Errorf("open the recording: %w", err)
	}
	defer f.Close()
	rep, err := pidmap.ReplayFile(f, at, tree, each)
	if errors.Is(err, pidmap.ErrNotRecording) {
		return nil, usageError{fmt.Sprintf("--from %s: %v", common.from, err)}
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", common.from, err)
	}
	if rep.Truncated {
		log.Warn().Int("line", rep.Lines).Msg("the recording ends in the middle of a line (the recorder stopped abruptly): answering from the lines before it")
	}
	return rep, nil
}

// viewNamespace returns the pid namespace PIDs are read in: REF's, or the
// caller's own (live), or the recording's host level (--from).
func viewNamespace(tree *pidmap.Tree, ref uint32, fromFile bool) (*pidmap.PidNS, error) {
	inode := ref
	if inode == 0 && fromFile {
		if root := tree.Root(); root != nil {
			return root, nil
		}
		return nil, notFoundError{errors.New("the recording holds no process at that instant")}
	}
	if inode == 0 {
		own, err := pidmap.OwnPidNS(pidmap.ProcRoot)
		if err != nil {
			return nil, fmt.Errorf("read the caller's pid namespace: %w", err)
		}
		inode = own
	}
	ns := tree.Namespace(inode)
	if ns == nil {
		return nil, notFoundError{fmt.Errorf("no live process is in pid namespace pid:[%d]", inode)}
	}
	return ns, nil
}

// containerView selects the processes of the container named by prefix and
// returns the container's pid namespace.
func containerView(tree *pidmap.Tree, prefix string, fromFile bool) (map[*pidmap.Proc]string, string, *pidmap.PidNS, error) {
	if fromFile {
		return nil, "", nil, usagef("--container needs the live system (a recording holds no cgroups): use --pidns")
	}
	ids := pidmap.Containers(pidmap.ProcRoot, tree)
	id, err := pidmap.ResolveContainer(ids, prefix)
	switch {
	case errors.Is(err, pidmap.ErrBadRef), errors.Is(err, pidmap.ErrAmbiguous):
		return nil, "", nil, usageError{"--container: " + err.Error()}
	case errors.Is(err, pidmap.ErrNoProcess):
		return nil, "", nil, notFoundError{err}
	}
	return ids, id, pidmap.ContainerNamespace(ids, id), nil
}

// findProc returns the live process that is pid in ns, or a not-found error
// that names the last holder when the tree remembers one.
func findProc(tree *pidmap.Tree, ns *pidmap.PidNS, pid uint32) (*pidmap.Proc, error) {
	if p := ns.Lookup(pid); p != nil {
		return p, nil
	}
	if h := tree.LastHolderIn(ns, pid); h != nil {
		return nil, notFoundError{fmt.Errorf("no process %d in pid:[%d]: it was %s (host PID %d), which exited at %s",
			pid, ns.Inode, h.CommString(), h.PID, formatTime(h.ExitTime))}
	}
	return nil, notFoundError{fmt.Errorf("no process %d in pid:[%d]", pid, ns.Inode)}
}

// parseQuery parses the command line of <pid> and tree: flags, and from
// min to max PIDs. Everything is checked before anything is loaded.
func parseQuery(name string, common *commonFlags, args []string, min, max int, stdout, stderr io.Writer) (pids []uint32, log zerolog.Logger, ref uint32, err error) {
	fs := newFlagSet(name)
	common.register(fs)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return nil, log, 0, helpOr(err, stdout)
	}
	if len(positional) < min || len(positional) > max {
		want := fmt.Sprintf("at most %d PID", max)
		if min == max {
			want = fmt.Sprintf("exactly %d PID", max)
		}
		return nil, log, 0, usagef("%s takes %s, got %q", name, want, positional)
	}
	if err := common.checkOutput(); err != nil {
		return nil, log, 0, err
	}
	for _, arg := range positional {
		pid, err := parsePID("PID", arg)
		if err != nil {
			return nil, log, 0, err
		}
		pids = append(pids, pid)
	}
	if log, err = newLogger(stderr, common.logLevel, common.logFormat); err != nil {
		return nil, log, 0, err
	}
	if common.from == "" || !isPID(common.pidns) {
		ref, err = resolvePidNS(common.pidns)
	}
	return pids, log, ref, err
}

// isPID reports whether a REF is the PID form.
func isPID(ref string) bool {
	n, err := strconv.ParseUint(ref, 10, 32)
	return err == nil && n > 0 && n <= pidmap.PIDMaxLimit
}

// refInTree resolves a PID-form --pidns against a recording: the pid
// namespace of that (host) PID at the instant looked at.
func refInTree(common commonFlags, tree *pidmap.Tree, ref uint32) (uint32, error) {
	if common.from == "" || !isPID(common.pidns) {
		return ref, nil
	}
	pid, _ := strconv.ParseUint(common.pidns, 10, 32)
	if p := tree.Get(uint32(pid)); p != nil {
		return p.NS().Inode, nil
	}
	if h := tree.LastHolder(uint32(pid)); h != nil {
		return h.NS().Inode, nil
	}
	return 0, notFoundError{fmt.Errorf("--pidns %s: no such process in the recording at that instant", common.pidns)}
}

// runShow answers `nspidtrace <pid>`; args start with the PID.
func runShow(ctx context.Context, common commonFlags, args []string, stdout, stderr io.Writer) error {
	pids, log, ref, err := parseQuery("nspidtrace <pid>", &common, args, 1, 1, stdout, stderr)
	if err != nil {
		return err
	}
	pid := pids[0]
	tree, err := loadTree(common, log)
	if err != nil {
		return err
	}
	if ref, err = refInTree(common, tree, ref); err != nil {
		return err
	}
	ns, err := viewNamespace(tree, ref, common.from != "")
	if err != nil {
		return err
	}
	if common.container != "" {
		// The PID is read in the container's pid namespace.
		if _, _, ns, err = containerView(tree, common.container, common.from != ""); err != nil {
			return err
		}
		ref = ns.Inode
	}
	var ev events.Event
	p, err := findProc(tree, ns, pid)
	if err != nil {
		// Without privileges, another user's process is still in /proc,
		// its namespaces aside.
		if ref != 0 || common.from != "" || pidmap.ReadProc(pidmap.ProcRoot, int(pid), &ev) != nil {
			return err
		}
		tree.Apply(&ev)
		p = tree.Get(ev.PID)
	}

	w := bufio.NewWriter(stdout)
	if common.output == "json" {
		p.Fill(&ev)
		w.Write(events.AppendJSON(nil, &ev))
		return w.Flush()
	}
	fmt.Fprintf(w, "%s  %s\n", p.CommString(), strings.Join(p.Argv(), " "))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tPID\tPPID\tPIDNS")
	// Every level, host first; with --pidns, from REF's level down.
	first := 0
	if ref != 0 {
		first = ns.Level
	}
	for i := first; i < p.Levels(); i++ {
		ppid := "-"
		if parent := p.Parent(); parent != nil && i < parent.Levels() {
			ppid = fmt.Sprint(parent.NSPid(i))
		} else if i == 0 && p.PPID != 0 {
			ppid = fmt.Sprint(p.PPID)
		}
		pidns := "?" // not ours to read
		if ns := p.PidNS(i); ns != nil && ns.Inode != 0 {
			pidns = fmt.Sprintf("pid:[%d]", ns.Inode)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", i, p.NSPid(i), ppid, pidns)
	}
	tw.Flush()
	return w.Flush()
}

func helpOr(err error, stdout io.Writer) error {
	if errors.Is(err, errHelpFlag) {
		fmt.Fprint(stdout, usageText)
		return errHelp
	}
	return err
}
