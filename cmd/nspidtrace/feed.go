package main

// The feed side of trace and record: the kernel's records keep the live
// tree true (a pidmap.Follower, resynchronised after lost events), and the
// events that pass the filter are written as NDJSON lines.

import (
	"bufio"
	"context"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/metrics"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// feed writes what a Tracer reports, filtered, to an output.
type feed struct {
	out      *bufio.Writer
	filter   *events.Filter
	follower *pidmap.Follower
	line     []byte
	// ancestors bounds the lineage written on exec lines (0: none).
	ancestors int
	// container, when set, keeps only one container's events.
	container *containerFollower
	// host, when set (--host), names the machine on every line.
	host []byte
	// metrics, when set (--metrics), counts what passes.
	metrics *metrics.Feed

	written   uint64
	lastFlush time.Time

	// unresolved counts cgroups the decoder could not name for want of
	// descriptors or memory; warned is the count last logged, when.
	unresolved func() uint64
	warned     uint64
	lastWarned time.Time
	log        zerolog.Logger
}

// warnEvery bounds how often a run of unnamed cgroups is logged.
const warnEvery = time.Minute

// flushInterval bounds how long a written line may wait in the buffer when
// the kernel keeps the reader busy and it never idles.
const flushInterval = time.Second

// newFeed wires tracer to w through a live tree. Call start, then run.
func newFeed(w io.Writer, tracer *loader.Tracer, filter *events.Filter, ancestors int, log zerolog.Logger) (*feed, error) {
	dec, err := newDecoder(log)
	if err != nil {
		return nil, err
	}
	f := &feed{out: bufio.NewWriterSize(w, 256<<10), filter: filter, ancestors: ancestors, lastFlush: time.Now(), log: log}
	if r, ok := dec.Cgroups.(interface{ Unresolved() uint64 }); ok {
		f.unresolved = r.Unresolved
	}
	f.follower = pidmap.NewFollower(tracer, pidmap.NewTree(pidmap.DefaultExitedKept), dec)
	f.follower.OnEvent = f.event
	f.follower.OnIdle = f.flush
	return f, nil
}

// start takes the snapshot the tree starts from. The programs are attached:
// what changes meanwhile waits in the ring buffer and follows it. Its proc
// lines are written when the filter keeps TypeProc (--snapshot, record).
func (f *feed) start() error { return f.follower.Start() }

// tree is the live tree the feed keeps.
func (f *feed) tree() *pidmap.Tree { return f.follower.Tree }

// run feeds events until ctx is done, then flushes what was written.
func (f *feed) run(ctx context.Context) error {
	err := f.follower.Run(ctx)
	if ferr := f.out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// logEnd reports the feed's counts once, at its end: nothing is logged per event.
func (f *feed) logEnd(log zerolog.Logger, msg string) {
	fl := f.follower
	log.Info().Uint64("events", fl.Events).Uint64("written", f.written).Uint64("lost", fl.Lost).
		Int("resyncs", fl.Resyncs()).Uint64("undecodable", fl.Undecodable).Msg(msg)
}

func (f *feed) event(ev *events.Event) error {
	if f.metrics != nil {
		f.metrics.Received(ev.Type)
	}
	if !keeps(f.container, f.filter, ev, f.follower.Tree) {
		return nil
	}
	// What the live tree, which has just applied the event, knows of its
	// subject: how it entered its namespace, and on exec its lineage.
	if p := f.follower.Tree.Subject(ev); p != nil {
		ev.EnteredBy = p.EnteredBy
		ev.OutsideInitCgroup = p.OutsideInitCgroup()
		if ev.Type == events.TypeExec && f.ancestors > 0 {
			p.FillAncestors(ev, f.ancestors)
		}
	}
	return f.write(ev)
}

func (f *feed) write(ev *events.Event) error {
	ev.Host = f.host
	f.line = events.AppendJSON(f.line[:0], ev)
	f.written++
	if _, err := f.out.Write(f.line); err != nil {
		f.countWriteError()
		return err
	}
	if f.metrics != nil {
		f.metrics.Written(ev.Type)
	}
	if f.written%1024 == 0 && time.Since(f.lastFlush) > flushInterval {
		return f.flush()
	}
	return nil
}

// flush runs whenever the ring buffer is drained, so lines reach readers
// promptly.
func (f *feed) flush() error {
	f.lastFlush = time.Now()
	var unresolved uint64
	if f.unresolved != nil {
		unresolved = f.unresolved()
		f.warnUnresolved(unresolved)
	}
	if f.metrics != nil {
		fl := f.follower
		f.metrics.Update(fl.Lost, fl.Resyncs(), fl.Tree.Len(), fl.Tree.Namespaces(), unresolved)
	}
	err := f.out.Flush()
	if err != nil {
		f.countWriteError()
	}
	return err
}

// warnUnresolved logs, at most once a minute, that cgroups went unnamed:
// lines that say attribution_error may belong to a container.
func (f *feed) warnUnresolved(n uint64) {
	if n == f.warned || time.Since(f.lastWarned) < warnEvery {
		return
	}
	f.log.Warn().Uint64("unnamed", n-f.warned).Uint64("total", n).
		Msg("cgroups and containers could not be named: the system is out of file descriptors or memory; those lines carry attribution_error")
	f.warned, f.lastWarned = n, time.Now()
}

func (f *feed) countWriteError() {
	if f.metrics != nil {
		f.metrics.WriteError()
	}
}

// serveMetrics serves metrics on --metrics's address, when given, until
// the returned stop is called: before the tracer is loaded, so that a
// probe gets 503 (not synced) rather than a refused connection while it
// loads; attach then gives them the feed (call it before the tracer is
// closed: a scrape reads its ring buffer).
func serveMetrics(arg string, log zerolog.Logger) (m *metrics.Feed, stop func(), err error) {
	if arg == "" {
		return nil, func() {}, nil
	}
	addr, err := metrics.ListenAddr(arg)
	if err != nil {
		return nil, nil, usagef("--metrics: %v", err)
	}
	m = metrics.New(nil, nil)
	srv, err := metrics.Serve(addr, m)
	if err != nil {
		return nil, nil, err
	}
	log.Info().Str("metrics", "http://"+srv.Addr()+"/metrics").Str("health", "http://"+srv.Addr()+"/healthz").Msg("serving metrics")
	return m, func() { srv.Close() }, nil
}

// attachMetrics makes m (when serving) count the feed, whose tracer's ring
// buffer it reads, until the returned detach, which must run before the
// tracer is closed.
func (f *feed) attachMetrics(m *metrics.Feed, tracer *loader.Tracer) (detach func()) {
	if m == nil {
		return func() {}
	}
	m.Attach(tracer, f.follower.Synced)
	f.metrics = m
	return func() { m.Attach(nil, nil) }
}
