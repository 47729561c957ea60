package main

// watch: the live tree full screen, or a recording's with a time cursor.
// The drawing and the keys are internal/watch's; here are its sources.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/recording"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/users"
	"github.com/nspidtrace/nspidtrace/internal/watch"
)

var watchCommand = &command{
	name:     "watch",
	synopsis: "nspidtrace [flags] watch [<pid>]",
	summary:  "the process tree full screen, kept live by the kernel's events; or a recording's, with a time cursor",
	about: `Draws the process tree on the terminal and keeps it up to date from the
kernel's events (no polling of /proc). Each row: the process's PIDs from the
host's level down, its user, its age, the tree drawing, comm and arguments,
its container and how it entered its pid namespace. New processes are marked
+ (green), exited ones ✗ (red) with their exit code or signal, for 5 s. The
header counts processes, pid namespaces, events/s and lost events.

With --container, --pidns or a <pid>, only those processes; --container
follows the container by name across restarts. With --from, the same screen
over a recording, with a time cursor: step by event, jump by time, play.
It starts at --at (default: the end), as tree --from --at would print it.

Keys (? shows them): q quit, p pause (--from: play), / filter by comm or PID,
space fold a subtree, l/L the level PIDs are shown from, Enter a process's
every field and its ancestors; --from: ←/→ an event, [/] 10 s, {/} 1 min,
g go to a time, +/- play speed.`,
	examples: `  sudo nspidtrace watch                          everything, live
  sudo nspidtrace watch --container web          one container, across restarts
  nspidtrace watch --from incident.ndjson --at 2026-11-23T10:03:00Z    a recording at 10:03
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		queryFlags(fs, o)
	},
	run:          runWatch,
	untilStopped: true,
}

// runWatch answers `nspidtrace watch [<pid>]`.
func runWatch(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		return usagef("watch takes at most 1 PID, got %q", args)
	}
	var pid uint32
	var err error
	if len(args) == 1 {
		if pid, err = parsePID("PID", args[0]); err != nil {
			return err
		}
	}
	if err := checkSelection(o); err != nil {
		return err
	}
	if !isTerminal(stdout) {
		return usagef("watch draws on a terminal, and stdout is not one: for lines to read or pipe, use `nspidtrace tree` (a snapshot) or `nspidtrace trace` (the feed)")
	}
	// While the screen is up, diagnostics wait, and the latest is shown in
	// its footer; they go to stderr once the terminal is restored.
	held := &heldLog{}
	defer held.writeTo(stderr)
	log, err := newLogger(held, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()

	var src watch.Source
	if len(o.from) > 0 {
		rw, err := openReplayWatch(o, pid, log)
		if err != nil {
			return err
		}
		defer rw.Close()
		src = rw
	} else {
		lw, err := startLiveWatch(ctx, o, pid, log, held)
		if err != nil {
			return err
		}
		defer lw.stop()
		src = lw
	}
	screen, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("open the terminal: %w", err)
	}
	return watch.New(screen, src).Run(ctx)
}

// heldLog keeps diagnostics while the screen is up (at most 1 MiB), and
// the latest line for the screen's footer.
type heldLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	last string
}

func (h *heldLog) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.buf.Len() < 1<<20 {
		h.buf.Write(p)
	}
	h.last = strings.TrimSpace(string(p))
	return len(p), nil
}

// latest is the last diagnostic, made safe for the terminal.
func (h *heldLog) latest() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return termsafe.String(h.last)
}

func (h *heldLog) writeTo(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.WriteTo(w)
}

// liveWatch is the live tree: a follower of the kernel's events, on its
// own goroutine, and the screen's frames, taken under the same lock.
type liveWatch struct {
	mu       sync.Mutex
	follower *pidmap.Follower
	tracer   *loader.Tracer
	o        *options
	ref      uint32 // --pidns's namespace
	own      uint32 // the caller's pid namespace
	root     *pidmap.Proc
	names    users.Names
	log      *heldLog

	cancel context.CancelFunc
	done   chan error
}

// startLiveWatch attaches the tracer, builds the tree and follows it. The
// selection is checked against the tree before the screen opens, so a
// container or PID that does not exist is a plain error.
func startLiveWatch(ctx context.Context, o *options, pid uint32, zlog zerolog.Logger, held *heldLog) (*liveWatch, error) {
	ref, err := resolvePidNS(o.pidns)
	if err != nil {
		return nil, err
	}
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	dec, err := source.Decoder(zlog)
	if err != nil {
		return nil, err
	}
	tracer, err := loader.Open(loader.Options{Logger: zlog})
	if err != nil {
		return nil, err
	}
	w := &liveWatch{tracer: tracer, o: o, ref: ref, own: own, log: held, done: make(chan error, 1)}
	w.names, _ = users.Read("/")
	w.follower = pidmap.NewFollower(lockedSource{tracer, &w.mu}, pidmap.NewTree(pidmap.DefaultExitedKept), dec)
	if err := w.follower.Start(); err != nil {
		tracer.Close()
		return nil, err
	}
	q, err := w.query()
	if err == nil && pid != 0 {
		w.root, err = q.Find(pid)
	}
	if err != nil {
		tracer.Close()
		return nil, err
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		// A panic here would end the process with the terminal raw:
		// it is handed to the screen's goroutine as an error instead.
		defer func() {
			if r := recover(); r != nil {
				w.done <- fmt.Errorf("following the kernel's events: panic: %v\n%s", r, debug.Stack())
			}
		}()
		w.done <- w.follower.Run(ctx)
	}()
	return w, nil
}

// query resolves the selection against the tree as it is now: a container
// restarted under its name is followed.
func (w *liveWatch) query() (*query, error) {
	tree := w.follower.Tree
	q := &query{Tree: tree, AsOf: tree.Time(), Own: tree.Namespace(w.own)}
	return q, q.Select(w.o.container, w.ref)
}

func (w *liveWatch) Frame(st *watch.State) watch.Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now().UnixNano()
	tree := w.follower.Tree
	q, err := w.query()
	var f watch.Frame
	if err != nil {
		f = watch.Frame{Processes: tree.Len(), Namespaces: tree.Namespaces(), Now: now, Title: termsafe.String(w.o.container + w.o.pidns)}
		f.Note = termsafe.String(err.Error()) + ": waiting for it"
	} else {
		f = watch.FrameOf(tree, watch.ViewSelection{View: q, Root: w.root}, st, now, w.names)
	}
	f.Events, f.Lost = w.follower.Events, w.follower.Lost
	if w.root != nil && w.root.Exited {
		f.Note = fmt.Sprintf("process %d exited", w.root.PID)
	}
	if last := w.log.latest(); last != "" && f.Note == "" {
		f.Note = last
	}
	select {
	case err := <-w.done:
		// The follower stopped: say why, for as long as the screen is up.
		w.done <- err
		if err != nil {
			f.Note = "stopped following the kernel: " + termsafe.String(err.Error())
		}
	default:
	}
	return f
}

func (w *liveWatch) Details(key events.Key) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return watch.Details(w.follower.Tree, key, time.Now().UnixNano())
}

// stop ends the follower and closes the tracer.
func (w *liveWatch) stop() {
	w.cancel()
	<-w.done
	w.tracer.Close()
}

// lockedSource hands the kernel's records to the tree under a lock, so
// that the screen reads the tree between two records, never during one.
type lockedSource struct {
	*loader.Tracer
	mu *sync.Mutex
}

func (s lockedSource) locked(f func(raw []byte) error) func(raw []byte) error {
	return func(raw []byte) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return f(raw)
	}
}

func (s lockedSource) Snapshot(handle func(raw []byte) error) error {
	return s.Tracer.Snapshot(s.locked(handle))
}

func (s lockedSource) Run(ctx context.Context, handle func(raw []byte) error, idle func() error) error {
	return s.Tracer.Run(ctx, s.locked(handle), func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return idle()
	})
}

// replayWatch is a recording with a time cursor (recording.Cursor), seen
// as --pidns, --container and <pid> select at the cursor's instant.
type replayWatch struct {
	*recording.Cursor
	o   *options
	pid uint32
}

// openReplayWatch reads the recording once to index its events, then
// places the cursor at --at (default: the end).
func openReplayWatch(o *options, pid uint32, log zerolog.Logger) (*replayWatch, error) {
	if o.given["pidns"] && !isPID(o.pidns) {
		if _, err := resolvePidNS(o.pidns); err != nil {
			return nil, err
		}
	}
	at, files, err := source.OpenTimeline(o.from, o.at)
	if err != nil {
		return nil, err
	}
	cursor, rep, err := recording.NewCursor(files, stepMarks(o))
	if err != nil {
		for _, f := range files {
			f.File.Close()
		}
		return nil, source.ReplayError(err, o.from, len(files))
	}
	w := &replayWatch{Cursor: cursor, o: o, pid: pid}
	source.LogReplay(log, rep)
	pos, t := w.Positions(), rep.End
	if o.at != "" {
		t = at.Time
		if at.Relative {
			t = rep.Start + int64(at.Offset)
		}
		if t < rep.Start || t > rep.End {
			w.Close()
			return nil, notFoundError{Err: fmt.Errorf("--at %w", &pidmap.RangeError{At: t, Start: rep.Start, End: rep.End})}
		}
		pos = w.Find(t)
	}
	if err := w.Seek(pos, t); err != nil {
		w.Close()
		return nil, err
	}
	// The view must exist at the instant the cursor starts at.
	if _, err := w.selection(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// stepMarks says which events ←/→ step through: those of --container's
// container (as trace --from --container keeps them) or in --pidns's
// namespace given as an inode; nil where every event is a step (no
// selection, or one known only at the cursor's instant: --pidns PID).
func stepMarks(o *options) func(ev *events.Event, tree *pidmap.Tree) bool {
	switch {
	case o.container != "":
		follow := feed.NewContainerFilter(o.container, nil, nil, zerolog.Nop())
		follow.Replay = true
		return follow.Keep
	case o.pidns != "" && !isPID(o.pidns):
		ref, err := resolvePidNS(o.pidns)
		if err != nil || ref == 0 {
			return nil
		}
		return func(ev *events.Event, _ *pidmap.Tree) bool { return ev.Level(ref) >= 0 }
	}
	return nil
}

// selection resolves the view at the cursor's instant.
func (w *replayWatch) selection() (watch.ViewSelection, error) {
	q := &query{Tree: w.Tree(), AsOf: w.Instant(), FromFile: true}
	ref := uint32(0)
	var err error
	if isPID(w.o.pidns) {
		ref, err = q.RefInRecording(w.o.pidns)
	} else if ref, err = resolvePidNS(w.o.pidns); err != nil {
		return watch.ViewSelection{}, err
	}
	if err == nil {
		err = q.Select(w.o.container, ref)
	}
	if err != nil {
		return watch.ViewSelection{}, err
	}
	sel := watch.ViewSelection{View: q}
	if w.pid != 0 {
		sel.Root, err = q.Find(w.pid)
	}
	return sel, err
}

func (w *replayWatch) Frame(st *watch.State) watch.Frame {
	now, tree := w.Instant(), w.Tree()
	sel, err := w.selection()
	if err != nil {
		return watch.Frame{Processes: tree.Len(), Namespaces: tree.Namespaces(), Now: now,
			Title: termsafe.String(strings.Join(w.o.from, ", ")), Note: termsafe.String(err.Error()) + " (at this instant)"}
	}
	// Names of this machine's users would mislead about another's: a
	// recording's rows show UIDs.
	f := watch.FrameOf(tree, sel, st, now, nil)
	f.Events = uint64(w.Position())
	return f
}

func (w *replayWatch) Details(key events.Key) []string {
	return watch.Details(w.Tree(), key, w.Instant())
}
