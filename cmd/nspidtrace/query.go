package main

// The query side of <pid> and tree: a process tree from the live kernel or
// a recording, the pid namespace PIDs are read in, and finding a process.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// query is a process tree and the view a command answers in.
type query = view.View

// openQuery checks the query flags, loads the tree and resolves the view.
// Everything that can be checked before loading is.
func openQuery(o *options, log zerolog.Logger) (*query, error) {
	if err := checkSelection(o); err != nil {
		return nil, err
	}
	q := &query{FromFile: len(o.from) > 0}
	var ref uint32
	var err error
	if !q.FromFile || !isPID(o.pidns) {
		if ref, err = resolvePidNS(o.pidns); err != nil {
			return nil, err
		}
	}
	if err := loadTree(q, o, log); err != nil {
		return nil, err
	}
	if q.Fallback && (o.pidns != "" || o.container != "") {
		return nil, fmt.Errorf("--pidns and --container need the privileges to read other processes' namespaces: %w", loader.ErrNoPrivileges)
	}
	if q.FromFile && isPID(o.pidns) {
		if ref, err = q.RefInRecording(o.pidns); err != nil {
			return nil, err
		}
	}
	if q.NetNS, err = view.ResolveNetNS(o.netns, q.Tree, q.FromFile); err != nil {
		return nil, err
	}
	return q, q.Select(o.container, ref)
}

// checkSelection refuses flag combinations that do not go together, the
// same way for <pid>, tree and trace.
func checkSelection(o *options) error {
	if o.at != "" && len(o.from) == 0 {
		return usagef("--at goes with --from")
	}
	if o.pidns != "" && o.container != "" {
		return usagef("give --pidns or --container, not both: --container already looks from the container's pid namespace")
	}
	return nil
}

// loadTree builds the tree: the live kernel's, or with --from the recording's
// as of --at.
func loadTree(q *query, o *options, log zerolog.Logger) error {
	if q.FromFile {
		q.Tree = pidmap.NewTree(pidmap.DefaultExitedKept)
		rep, err := source.Replay(o.from, o.at, log, q.Tree, nil)
		if err != nil {
			return err
		}
		q.AsOf = rep.Cutoff
		if q.AsOf == 0 {
			q.AsOf = rep.End
		}
		return nil
	}
	var err error
	if q.Tree, q.Fallback, err = source.Live(log, !o.noArgs); err != nil {
		return err
	}
	q.AsOf = q.Tree.Time()
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	q.Own = q.Tree.Namespace(own)
	return nil
}

// oneShotQuery starts <pid> and tree, which answer once and exit: it checks
// --output, makes the logger and opens the query. For <pid>, pid is the
// PID asked about, and /proc answers when it can (lineageQuery); tree
// passes 0. Garbage collection is off: the command holds at most the
// kernel's BTF and the tree (a recording is streamed), and no collection is
// worth its time (measured: 5 of 56 ms).
func oneShotQuery(o *options, pid uint32, stderr io.Writer) (*query, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return nil, err
	}
	debug.SetGCPercent(-1)
	// The flags are checked before either path answers.
	if err := checkSelection(o); err != nil {
		return nil, err
	}
	if pid != 0 {
		if q := lineageQuery(o, pid, log); q != nil {
			return q, nil
		}
	}
	return openQuery(o, log)
}

// kernelOnlyEnv, set to 1, makes <pid> ask the kernel's task iterator even
// where /proc would answer: to compare the two (docs/cli.md).
const kernelOnlyEnv = "NSPIDTRACE_KERNEL_ONLY"

// lineageQuery answers <pid> from /proc alone (procfs.Lineage) where /proc
// shows all the answer needs: live, as root, from the host's pid namespace
// (where NStgid holds every level), as text, without --pidns or
// --container. JSON carries the process's key, its start in nanoseconds,
// which /proc counts only in clock ticks: it asks the iterator. nil when the
// iterator must answer; it then gives the same answer, or the error.
func lineageQuery(o *options, pid uint32, log zerolog.Logger) *query {
	if o.output == "json" || len(o.from) > 0 || o.pidns != "" || o.container != "" || o.netns != "" ||
		os.Getenv(kernelOnlyEnv) == "1" || os.Geteuid() != 0 || !procfs.InHostPidNS(procfs.ProcRoot) {
		return nil
	}
	r, err := source.CgroupResolver()
	if err != nil {
		return nil // the iterator's path says what is wrong with it
	}
	defer r.Close()
	start := time.Now()
	tree, err := procfs.Lineage(procfs.ProcRoot, int(pid), func(pid int) (*events.Cgroup, error) {
		return r.OfProcess(procfs.ProcRoot, pid)
	})
	if err != nil {
		log.Debug().Err(err).Msg("asking the kernel's task iterator")
		return nil
	}
	q := &query{Tree: tree, AsOf: time.Now().UnixNano(), Own: tree.Namespace(procfs.InitPidNS)}
	q.NS = q.Own
	log.Debug().Dur("took", time.Since(start)).Int("processes", tree.Len()).Msg("answered from /proc")
	return q
}

// resolvePidNS reads a --pidns REF; "" means no restriction.
func resolvePidNS(ref string) (uint32, error) {
	if ref == "" {
		return 0, nil
	}
	ns, err := procfs.ResolvePidNS(procfs.ProcRoot, ref)
	switch {
	case errors.Is(err, procfs.ErrBadRef):
		return 0, usageError{Msg: "--pidns: " + err.Error()}
	case errors.Is(err, procfs.ErrNoProcess), errors.Is(err, procfs.ErrNotFound):
		return 0, notFoundError{Err: err}
	}
	return ns, err
}

// isPID reports whether a REF is the PID form.
func isPID(ref string) bool {
	n, err := strconv.ParseUint(ref, 10, 32)
	return err == nil && n > 0 && n <= procfs.PIDMaxLimit
}

// parsePID reads a PID argument: a number from 1 to the kernel's limit.
func parsePID(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > procfs.PIDMaxLimit {
		return 0, usagef("%s %q is not a PID (want a number from 1 to %d)", what, s, procfs.PIDMaxLimit)
	}
	return uint32(n), nil
}
