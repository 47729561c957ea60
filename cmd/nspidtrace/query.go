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
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/cgroup"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/recording"
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
		rep, err := replay(o, log, q.Tree, nil)
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
	if q.Tree, q.Fallback, err = snapshotTree(log, !o.noArgs); err != nil {
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
	r, err := cgroupResolver()
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

// snapshotTree builds the process tree from the kernel's task iterator or,
// without the privileges for BPF, from /proc (saying so on stderr; then the
// tree holds only processes whose namespaces the caller may read).
func snapshotTree(log zerolog.Logger, args bool) (tree *pidmap.Tree, fallback bool, err error) {
	dec, err := newDecoder(log)
	if err != nil {
		return nil, false, err
	}
	start := time.Now()
	tree, err = pidmap.FromSnapshot(func(handle func([]byte) error) error {
		return loader.ReadSnapshot(args, handle)
	}, dec, procfs.Tasks(procfs.ProcRoot))
	if errors.Is(err, loader.ErrNoPrivileges) {
		log.Warn().Msg("no privileges for BPF: answering from /proc, with only the pid-namespace levels visible from here (run as root for every level)")
		var unread int
		tree, unread, err = procfs.FromProc(procfs.ProcRoot)
		if unread > 0 {
			log.Warn().Int("processes", unread).Msg("some processes are in pid namespaces you may not read: their PIDs are shown at every level, those namespaces as pid:[?] (run as root to name them)")
		}
		return tree, true, err
	}
	if err != nil {
		return nil, false, err
	}
	log.Debug().Dur("took", time.Since(start)).Int("processes", tree.Len()).Msg("snapshot of the kernel's tasks")
	return tree, false, nil
}

// newDecoder makes the decoder of the kernel's records: their times made
// Unix time, and their cgroup IDs named with their containers where the
// cgroup hierarchy can be read (else it says so, and names none).
func newDecoder(log zerolog.Logger) (events.Decoder, error) {
	boot, err := loader.BootToUnix()
	if err != nil {
		return events.Decoder{}, err
	}
	dec := events.Decoder{BootToUnix: boot}
	if procfs.LSMActive(procfs.ProcRoot) {
		// The label is read when the record is decoded: a process that
		// exec'd and exited at once has none on its line.
		dec.LSM = func(pid uint32, dst []byte) int {
			return procfs.ReadLSM(procfs.ProcRoot+"/"+strconv.FormatUint(uint64(pid), 10), dst)
		}
	}
	r, err := cgroupResolver()
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the cgroup hierarchy: cgroups and containers are not named")
		return dec, nil
	}
	log.Debug().Stringer("hierarchy", r.Hierarchy()).Msg("cgroups")
	if r.Partial() {
		log.Warn().Str("mounted", r.Hierarchy().Root).Msg("the cgroup hierarchy here is a container's view: processes in cgroups outside it are shown without cgroup or container (attribution_error says so); run on the host, or mount the host's hierarchy, to name them")
	}
	dec.Cgroups = r
	return dec, nil
}

// cgroupResolver opens the hierarchy the kernel side reads cgroup IDs
// from, naming containers from the host's runtimes.
func cgroupResolver() (*cgroup.Resolver, error) {
	h, err := loader.Hierarchy()
	if err != nil {
		return nil, err
	}
	return cgroup.NewResolver(h, "/")
}

// replay reads --from up to --at into tree, calling each with every event.
func replay(o *options, log zerolog.Logger, tree *pidmap.Tree, each func(*events.Event, []byte) error) (*pidmap.Replay, error) {
	at, files, err := openTimeline(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.File.Close()
		}
	}()
	rep, err := pidmap.ReplayFiles(recording.Inputs(files), at, tree, each)
	if err != nil {
		return nil, replayError(err, o, len(files))
	}
	logReplay(log, rep)
	return rep, nil
}

// openTimeline reads --at and opens --from's files, oldest first; the
// caller closes them.
func openTimeline(o *options) (pidmap.At, []recording.File, error) {
	at, err := pidmap.ParseAt(o.at)
	if err != nil {
		return at, nil, usagef("bad --at: %v", err)
	}
	files, err := recording.Open(o.from)
	return at, files, err
}

// replayError is err, from replaying n files of --from, with its exit code:
// 2 for a file that is not a recording, 3 for an instant outside it.
func replayError(err error, o *options, n int) error {
	from := strings.Join(o.from, ", ")
	var rerr *pidmap.RangeError
	switch {
	case errors.Is(err, pidmap.ErrNotRecording):
		return usageError{Msg: fmt.Sprintf("--from %s: %v", from, err)}
	case errors.As(err, &rerr):
		return notFoundError{Err: fmt.Errorf("--at %w", err)}
	case n == 1:
		return fmt.Errorf("%s: %w", from, err)
	}
	return fmt.Errorf("--from %s: %w", from, err)
}

// logReplay says what a replay noticed about the recording.
func logReplay(log zerolog.Logger, rep *pidmap.Replay) {
	log.Debug().Int("files", rep.Files).Int("lines", rep.Lines).Msg("replayed")
	if rep.Truncated {
		log.Warn().Int("line", rep.Lines).Msg("the recording ends in the middle of a line (the recorder stopped abruptly): answering from the lines before it")
	}
	if !rep.Snapshot {
		log.Warn().Msg("the file has no snapshot (trace without --snapshot?): processes alive before its first line are unknown")
	}
	if rep.Skipped > 0 {
		log.Warn().Int("lines", rep.Skipped).Msg("skipped lines of event types this version does not know")
	}
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
