package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"
	"time"

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
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, errHelpFlag) {
			fmt.Fprint(stdout, usageText)
			return errHelp
		}
		return err
	}
	if len(positional) > 0 {
		return usagef("trace takes no arguments, got %q", positional[0])
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
	if filter.PidNS, err = resolvePidNS(common.pidns); err != nil {
		return err
	}
	var rootPID uint32
	if tf.pid != "" {
		if rootPID, err = parsePID("--pid", tf.pid); err != nil {
			return err
		}
	}

	// Attach before looking at /proc, so no process slips between the two.
	tracer, err := loader.Open(loader.Options{Threads: tf.threads, PidNS: filter.PidNS, Logger: log})
	if err != nil {
		return err
	}
	defer tracer.Close()

	if rootPID != 0 {
		if err := followSubtree(&filter, common.pidns != "", rootPID); err != nil {
			return err
		}
	}
	bootToUnix, err := loader.BootToUnix()
	if err != nil {
		return err
	}
	if tf.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, tf.duration)
		defer cancel()
	}

	feed := &feed{
		out:     bufio.NewWriterSize(stdout, 256<<10),
		decoder: events.Decoder{BootToUnix: bootToUnix},
		filter:  &filter,
		tracer:  tracer,
	}
	log.Debug().Msg("tracing")
	err = tracer.Run(ctx, feed.handle, feed.idle)
	if errors.Is(err, syscall.EPIPE) {
		// The reader went away (`| head`): a normal end.
		log.Debug().Msg("stdout closed")
		err = nil
	}
	log.Info().Uint64("events", feed.seen).Uint64("written", feed.written).Uint64("lost", feed.lostTotal).
		Uint64("undecodable", feed.bad).Msg("trace ended")
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

// followSubtree restricts filter to pid (in filter.PidNS when withNS, else
// in the caller's pid namespace) and its descendants.
func followSubtree(filter *events.Filter, withNS bool, pid uint32) error {
	own, err := pidmap.OwnPidNS(pidmap.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	viewPID := int(pid)
	if withNS {
		if viewPID, err = pidmap.FindInNS(pidmap.ProcRoot, filter.PidNS, pid); err != nil {
			return notFoundError{fmt.Errorf("--pid: %w", err)}
		}
	}
	seeds, err := pidmap.Descendants(pidmap.ProcRoot, viewPID)
	if errors.Is(err, pidmap.ErrNoProcess) {
		return notFoundError{fmt.Errorf("--pid: %w", err)}
	} else if err != nil {
		return err
	}
	filter.FollowSubtree(own, seeds)
	return nil
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
}

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
	_, err := f.out.Write(f.line)
	return err
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
	return f.out.Flush()
}
