package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

type traceFlags struct {
	pid      string
	comm     string
	events   string
	threads  bool
	duration time.Duration
	snapshot bool
}

func runTrace(ctx context.Context, common commonFlags, args []string, stdout, stderr io.Writer) error {
	var tf traceFlags
	fs := newFlagSet("trace")
	common.register(fs)
	fs.StringVar(&tf.pid, "pid", "", "")
	fs.StringVar(&tf.comm, "comm", "", "")
	fs.StringVar(&tf.events, "events", "", "")
	fs.BoolVar(&tf.threads, "threads", false, "")
	fs.DurationVar(&tf.duration, "duration", 0, "")
	fs.BoolVar(&tf.snapshot, "snapshot", false, "")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return helpOr(err, stdout)
	}
	if len(positional) > 0 {
		return usagef("trace takes no arguments, got %q", positional[0])
	}
	if common.output != "text" {
		return usagef("trace always writes NDJSON: --output is for <pid> and tree")
	}
	log, err := newLogger(stderr, common.logLevel, common.logFormat)
	if err != nil {
		return err
	}

	var filter events.Filter
	if filter.Types, err = events.ParseTypeSet(tf.events); err != nil {
		return usagef("--events: %v", err)
	}
	if len(tf.comm) >= events.CommLen {
		return usagef("--comm %q is longer than the kernel's %d-byte comm", tf.comm, events.CommLen-1)
	}
	filter.Comm = []byte(tf.comm)
	if tf.duration < 0 {
		return usagef("--duration must not be negative")
	}
	if common.from != "" {
		return replayTrace(common, tf, &filter, log, stdout)
	}
	if common.at != "" {
		return usagef("--at goes with --from")
	}
	if filter.PidNS, err = resolvePidNS(common.pidns); err != nil {
		return err
	}
	if common.container != "" {
		// A container's processes, docker exec'd ones too, are those in
		// its pid namespace: the kernel filters by that.
		if common.pidns != "" {
			return usagef("give --pidns or --container, not both")
		}
		tree, err := snapshotTree(log)
		if err != nil {
			return err
		}
		_, _, ns, err := containerView(tree, common.container, false)
		if err != nil {
			return err
		}
		filter.PidNS = ns.Inode
	}
	// Find --pid's process before attaching, so a typo fails fast.
	var subtreeRoot int
	if tf.pid != "" {
		if subtreeRoot, err = findSubtreeRoot(tf.pid, filter.PidNS); err != nil {
			return err
		}
	}

	// Attach before looking at /proc, so no process slips between the two.
	tracer, err := loader.Open(loader.Options{Threads: tf.threads, PidNS: filter.PidNS, Logger: log})
	if err != nil {
		return err
	}
	defer tracer.Close()

	if subtreeRoot != 0 {
		if err := followSubtree(&filter, subtreeRoot); err != nil {
			return err
		}
	}
	if tf.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tf.duration)
		defer cancel()
	}
	feed, err := newFeed(stdout, tracer, &filter)
	if err != nil {
		return err
	}
	if tf.snapshot {
		// Programs are attached: what changes during the snapshot waits in
		// the ring buffer and follows it.
		if err := tracer.Snapshot(feed.handle); err != nil {
			return err
		}
	}
	log.Info().Msg("tracing started")
	err = tracer.Run(ctx, feed.handle, feed.idle)
	log.Info().Uint64("events", feed.seen).Uint64("written", feed.written).Uint64("lost", feed.lostTotal).
		Uint64("undecodable", feed.bad).Msg("trace ended")
	return err
}

// replayTrace prints a recording's lines that pass the filters, up to --at.
// PIDs (--pid) are the recording's host PIDs, or REF's with --pidns.
func replayTrace(common commonFlags, tf traceFlags, filter *events.Filter, log zerolog.Logger, stdout io.Writer) error {
	if tf.threads || tf.snapshot || tf.duration != 0 {
		return usagef("--threads, --snapshot and --duration are for live tracing, not --from")
	}
	if isPID(common.pidns) {
		return usagef("with --from, give --pidns as pid:[INODE] or an inode: a PID names a process of the live system")
	}
	if common.container != "" {
		return usagef("--container needs the live system (a recording holds no cgroups): use --pidns")
	}
	var err error
	if filter.PidNS, err = resolvePidNS(common.pidns); err != nil {
		return err
	}
	if tf.pid != "" {
		pid, err := parsePID("--pid", tf.pid)
		if err != nil {
			return err
		}
		filter.FollowSubtree(filter.PidNS, []uint32{pid})
	}
	w := bufio.NewWriterSize(stdout, 256<<10)
	_, err = replay(common, log, pidmap.NewTree(pidmap.DefaultExitedKept), func(ev *events.Event, line []byte) error {
		if !filter.Match(ev) {
			return nil
		}
		w.Write(line)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}

// resolvePidNS reads a --pidns REF; "" means no restriction.
func resolvePidNS(ref string) (uint32, error) {
	if ref == "" {
		return 0, nil
	}
	ns, err := pidmap.ResolvePidNS(pidmap.ProcRoot, ref)
	switch {
	case errors.Is(err, pidmap.ErrBadRef):
		return 0, usageError{"--pidns: " + err.Error()}
	case errors.Is(err, pidmap.ErrNoProcess):
		return 0, notFoundError{err}
	}
	return ns, err
}

// parsePID reads a PID argument: a number from 1 to the kernel's limit.
func parsePID(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > pidmap.PIDMaxLimit {
		return 0, usagef("%s %q is not a PID (want a number from 1 to %d)", what, s, pidmap.PIDMaxLimit)
	}
	return uint32(n), nil
}

// findSubtreeRoot finds the process --pid names: a PID in pid namespace ns
// when --pidns was given, else in the caller's. It returns the PID as the
// caller's procfs numbers it.
func findSubtreeRoot(arg string, ns uint32) (int, error) {
	pid, err := parsePID("--pid", arg)
	if err != nil {
		return 0, err
	}
	if ns == 0 {
		if ns, err = pidmap.OwnPidNS(pidmap.ProcRoot); err != nil {
			return 0, fmt.Errorf("read the caller's pid namespace: %w", err)
		}
	}
	viewPID, err := pidmap.FindInNS(pidmap.ProcRoot, ns, pid)
	if errors.Is(err, pidmap.ErrNoProcess) {
		return 0, notFoundError{fmt.Errorf("--pid: %w", err)}
	}
	return viewPID, err
}

// followSubtree restricts filter to the process viewPID (as the caller's
// procfs numbers it) and its descendants, those alive now and those to come.
func followSubtree(filter *events.Filter, viewPID int) error {
	own, err := pidmap.OwnPidNS(pidmap.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	seeds, err := pidmap.Descendants(pidmap.ProcRoot, viewPID)
	if errors.Is(err, pidmap.ErrNoProcess) {
		return notFoundError{fmt.Errorf("--pid: the process exited: %w", err)}
	} else if err != nil {
		return err
	}
	filter.FollowSubtree(own, seeds)
	return nil
}

// newFeed writes tracer's records that pass filter to w as NDJSON.
func newFeed(w io.Writer, tracer *loader.Tracer, filter *events.Filter) (*feed, error) {
	bootToUnix, err := loader.BootToUnix()
	if err != nil {
		return nil, err
	}
	return &feed{
		out:       bufio.NewWriterSize(w, 256<<10),
		decoder:   events.Decoder{BootToUnix: bootToUnix},
		filter:    filter,
		tracer:    tracer,
		lastFlush: time.Now(),
	}, nil
}

// feed turns ring-buffer records into NDJSON lines on the output.
type feed struct {
	out     *bufio.Writer
	decoder events.Decoder
	filter  *events.Filter
	tracer  *loader.Tracer
	ev      events.Event
	line    []byte

	seen, written, bad  uint64
	lostSeen, lostTotal uint64
	lastFlush           time.Time
}

// flushInterval bounds how long a written line may wait in the buffer when
// the kernel keeps the reader busy and it never idles.
const flushInterval = time.Second

func (f *feed) handle(raw []byte) error {
	f.seen++
	if err := f.decoder.Decode(raw, &f.ev); err != nil {
		f.bad++
		return nil
	}
	if !f.filter.Match(&f.ev) {
		return nil
	}
	return f.write(&f.ev)
}

func (f *feed) write(ev *events.Event) error {
	f.line = events.AppendJSON(f.line[:0], ev)
	f.written++
	if _, err := f.out.Write(f.line); err != nil {
		return err
	}
	if f.written%1024 == 0 && time.Since(f.lastFlush) > flushInterval {
		return f.flush()
	}
	return nil
}

func (f *feed) flush() error {
	f.lastFlush = time.Now()
	return f.out.Flush()
}

// idle reports records the kernel dropped and flushes the output: it runs
// whenever the ring buffer is drained, so lines reach readers promptly.
func (f *feed) idle() error {
	lost, err := f.tracer.Lost()
	if err != nil {
		return err
	}
	if lost > f.lostSeen {
		ev := events.Event{Type: events.TypeLost, Time: time.Now().UnixNano(), Count: lost - f.lostSeen}
		f.lostTotal += ev.Count
		f.lostSeen = lost
		if err := f.write(&ev); err != nil {
			return err
		}
	}
	return f.flush()
}
