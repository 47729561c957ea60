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
	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/recording"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

// query is a process tree and the view a command answers in.
type query struct {
	tree *pidmap.Tree
	asOf int64 // the instant the tree stands at (Unix ns)

	// view is the pid namespace PIDs are read in: REF's, the container's,
	// the caller's own (live) or the recording's host level.
	view *pidmap.PidNS
	// narrowed: --pidns or --container chose the view, so only processes
	// inside it are shown, from its level down.
	narrowed bool
	// container is --container's; its processes are those in its cgroup
	// (events.Cgroup.In).
	container *events.Container
	// netns, when not 0, keeps only processes in that network namespace
	// (--netns).
	netns uint32

	// own is the caller's pid namespace (live): /proc numbers processes
	// as it sees them.
	own *pidmap.PidNS

	fromFile bool
	fallback bool // answered from /proc, without privileges
}

// openQuery checks the query flags, loads the tree and resolves the view.
// Everything that can be checked before loading is.
func openQuery(o *options, log zerolog.Logger) (*query, error) {
	if err := checkSelection(o); err != nil {
		return nil, err
	}
	q := &query{fromFile: len(o.from) > 0}
	var ref uint32
	var err error
	if !q.fromFile || !isPID(o.pidns) {
		if ref, err = resolvePidNS(o.pidns); err != nil {
			return nil, err
		}
	}
	if err := q.load(o, log); err != nil {
		return nil, err
	}
	if q.fallback && (o.pidns != "" || o.container != "") {
		return nil, fmt.Errorf("--pidns and --container need the privileges to read other processes' namespaces: %w", loader.ErrNoPrivileges)
	}
	if q.fromFile && isPID(o.pidns) {
		if ref, err = q.refInRecording(o.pidns); err != nil {
			return nil, err
		}
	}
	if q.netns, err = resolveNetNS(o.netns, q.tree, q.fromFile); err != nil {
		return nil, err
	}
	return q, q.selectView(o.container, ref)
}

// selectView chooses the view of the tree: container's (a name, ID or ID
// prefix), pid namespace ref's, or by default the caller's own (live) or
// the recording's host level.
func (q *query) selectView(container string, ref uint32) error {
	switch {
	case container != "":
		return q.selectContainer(container)
	case ref != 0:
		q.narrowed = true
		q.view = q.tree.Namespace(ref)
		if q.view == nil {
			return notFoundError{Err: fmt.Errorf("no live process is in pid namespace pid:[%d]", ref)}
		}
	case q.fromFile:
		if q.view = q.tree.Root(); q.view == nil {
			return notFoundError{Err: errors.New("the recording holds no process at that instant")}
		}
	default:
		if q.view = q.own; q.view == nil {
			return errors.New("the caller's pid namespace has no process in the tree")
		}
	}
	return nil
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

// load builds the tree: the live kernel's, or with --from the recording's
// as of --at.
func (q *query) load(o *options, log zerolog.Logger) error {
	if q.fromFile {
		q.tree = pidmap.NewTree(pidmap.DefaultExitedKept)
		rep, err := replay(o, log, q.tree, nil)
		if err != nil {
			return err
		}
		q.asOf = rep.Cutoff
		if q.asOf == 0 {
			q.asOf = rep.End
		}
		return nil
	}
	var err error
	if q.tree, q.fallback, err = snapshotTree(log, !o.noArgs); err != nil {
		return err
	}
	q.asOf = q.tree.Time()
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	q.own = q.tree.Namespace(own)
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
	q := &query{tree: tree, asOf: time.Now().UnixNano(), own: tree.Namespace(procfs.InitPidNS)}
	q.view = q.own
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

// refInRecording resolves a PID-form --pidns against a recording: the pid
// namespace of that (host) PID at the instant looked at.
func (q *query) refInRecording(ref string) (uint32, error) {
	pid, _ := strconv.ParseUint(ref, 10, 32)
	if p := q.tree.Get(uint32(pid)); p != nil {
		return p.NS().Inode, nil
	}
	if h := q.tree.LastHolder(uint32(pid)); h != nil {
		return h.NS().Inode, nil
	}
	return 0, notFoundError{Err: fmt.Errorf("--pidns %s: no such process in the recording at that instant", ref)}
}

// selectContainer narrows the view to a container: its processes, seen
// from its pid namespace.
func (q *query) selectContainer(arg string) error {
	c, err := container.Select(q.tree.Containers(), arg)
	switch {
	case errors.Is(err, container.ErrAmbiguous):
		return usageError{Msg: "--container: " + err.Error()}
	case errors.Is(err, container.ErrNoContainer):
		if q.fromFile {
			err = fmt.Errorf("%w at that instant of the recording", err)
		} else if c, finished := (container.State{Root: "/"}).Stopped(arg); c != nil {
			// Not the same answer as a name nothing has.
			err = fmt.Errorf("%w %q: %s (%s, %s) is stopped%s", container.ErrNoContainer, arg,
				termsafe.String(c.Qualified()), c.ShortID(), c.Runtime, stoppedAt(finished))
		}
		return notFoundError{Err: err}
	}
	q.container, q.narrowed = c, true
	q.view = q.tree.ContainerNS(c.ID)
	return nil
}

// stoppedAt says when a container stopped, where its runtime says.
func stoppedAt(t time.Time) string {
	if t.IsZero() || t.Year() < 2000 {
		return ""
	}
	return " since " + t.UTC().Format(time.RFC3339)
}

// selected reports whether p is shown: with --pidns, a process inside REF;
// with --container, one of the container's, or one that shares the pid
// namespace the container made (marked by outsideContainer).
func (q *query) selected(p *pidmap.Proc) bool {
	if q.netns != 0 && p.Namespaces()[events.NSNet] != q.netns {
		return false
	}
	if !q.narrowed {
		return true
	}
	if q.container == nil {
		return p.LevelOf(q.view) >= 0
	}
	return p.Cgroup.In(q.container.ID) || q.ownsView() && p.LevelOf(q.view) >= 0
}

// ownsView reports whether the container made the pid namespace it is seen
// from: its init is the container's (not so for --pid=host, or a sidecar
// with --pid=container:OTHER).
func (q *query) ownsView() bool { return madeBy(q.view, q.container.ID) }

// madeBy reports whether container id made pid namespace ns: its init,
// while it lives, is the container's. A dead namespace's inode is reused
// by the kernel: this tells generations apart.
func madeBy(ns *pidmap.PidNS, id string) bool {
	return ns != nil && ns.Level > 0 && ns.Init != nil && ns.Init.Cgroup.In(id)
}

// outsideContainer describes, for a process shown with --container that is
// not in the container's cgroup, where it is instead; "" for members and
// without --container.
func (q *query) outsideContainer(p *pidmap.Proc) string {
	if q.container == nil || p.Cgroup.In(q.container.ID) {
		return ""
	}
	where := "not in its cgroup"
	if p.Cgroup != nil && p.Cgroup.Container != nil {
		where = "container " + termsafe.String(p.Cgroup.Container.Label())
	} else if p.Cgroup != nil && p.Cgroup.Path != "" {
		where = "cgroup " + termsafe.String(p.Cgroup.Path)
	}
	return fmt.Sprintf("in %s's pid namespace, %s", termsafe.String(q.container.Label()), where)
}

// level is the pid-namespace level PIDs are shown from.
func (q *query) level() int {
	if q.narrowed {
		return q.view.Level
	}
	return 0
}

// find returns the process that is pid in the view. A thread ID names its
// process. Not found, the error names the last holder when the tree
// remembers one.
func (q *query) find(pid uint32) (*pidmap.Proc, error) {
	p, err := q.findInView(pid)
	if err == nil && q.netns != 0 {
		if ino := p.Namespaces()[events.NSNet]; ino != q.netns {
			return nil, notFoundError{Err: fmt.Errorf("process %d is in network namespace net:[%d], not in --netns's net:[%d]", pid, ino, q.netns)}
		}
	}
	return p, err
}

// findInView is find without --netns.
func (q *query) findInView(pid uint32) (*pidmap.Proc, error) {
	if p := q.view.Lookup(pid); p != nil {
		return p, nil
	}
	if !q.fromFile {
		if p := q.findLive(pid); p != nil {
			return p, nil
		}
	}
	if h := q.tree.LastHolderIn(q.view, pid); h != nil {
		return nil, notFoundError{Err: fmt.Errorf("no process %d in pid:[%d]: it was %s (host PID %d), which exited at %s",
			pid, q.view.Inode, termsafe.String(h.CommString()), h.PID, pidmap.FormatTime(h.ExitTime))}
	}
	return nil, notFoundError{Err: fmt.Errorf("no process %d in pid:[%d]", pid, q.view.Inode)}
}

// findLive asks /proc for what the tree does not hold: a thread ID, or
// (without privileges) another user's process, whose namespaces the
// fallback tree could not read.
func (q *query) findLive(pid uint32) *pidmap.Proc {
	viewPID, err := procfs.FindInNS(procfs.ProcRoot, q.view.Inode, pid)
	if err != nil {
		return nil
	}
	if q.own != nil {
		if p := q.own.Lookup(uint32(viewPID)); p != nil {
			return p
		}
	}
	if !q.fallback || q.narrowed {
		return nil
	}
	var ev events.Event
	if procfs.ReadProc(procfs.ProcRoot, viewPID, &ev) != nil {
		return nil
	}
	q.tree.Apply(&ev)
	return q.tree.Get(ev.PID)
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

// appendNotes appends what tree says of p after its label: zombie, its
// container where p is the first of it down its branch, where a process
// shown with --container is instead, and how p entered its pid namespace.
// Most processes have none: that costs no allocation.
func (q *query) appendNotes(dst []byte, p *pidmap.Proc) []byte {
	if p.Zombie {
		dst = append(dst, " <zombie>"...)
	}
	if c := newContainer(p); c != nil && q.container == nil {
		dst = termsafe.Append(append(dst, " [container "...), c.Label())
		dst = append(dst, ']')
	}
	if out := q.outsideContainer(p); out != "" {
		dst = append(append(append(dst, " ["...), out...), ']')
	}
	if from := q.enteredFrom(p); from != "" {
		dst = append(append(append(dst, " [entered from "...), from...), ']')
	}
	if cg := p.Cgroup; cg != nil && cg.Unresolved != "" && cg.Container == nil {
		dst = append(dst, " [container unknown]"...)
	}
	if p.ParentLoop {
		// Only a recording can say this: the kernel makes no loops.
		dst = strconv.AppendUint(append(dst, " [parent "...), uint64(p.PPID), 10)
		dst = append(dst, " not linked: the recording's parents loop back here]"...)
	}
	return dst
}

// enteredFrom describes the process that forked p into its pid namespace
// from outside, for a process that entered it: "nsenter(12600)", or the
// host PID alone once the enterer is gone; it adds when p is not in its
// namespace's init's cgroup, as nsenter leaves it (docker exec joins it).
// "" for any other process.
func (q *query) enteredFrom(p *pidmap.Proc) string {
	if !p.Entered() {
		return ""
	}
	by := p.EnteredBy
	from := fmt.Sprintf("host PID %d", by.PID)
	for _, e := range []*pidmap.Proc{q.tree.Get(by.PID), q.tree.LastHolder(by.PID)} {
		if e != nil && (e.Start == by.Start || by.Start == 0) {
			from = fmt.Sprintf("%s(%d)", termsafe.String(e.CommString()), by.PID)
			break
		}
	}
	if p.OutsideInitCgroup() {
		from += "; not in its init's cgroup"
	}
	return from
}
