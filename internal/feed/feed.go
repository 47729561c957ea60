// Package feed is the live chain behind trace and record: the kernel's
// records keep a tree true (pidmap.Follower, resynchronised after lost
// events), a filter and a container's follower keep what was asked for,
// the tree enriches it (how a process entered its namespace, its lineage),
// and the lines go to an output, counted by the metrics, while a Sink
// (record's rotation) is told of every event. trace's selection flags are
// resolved here too, and trace --from (Replay) keeps a recording's lines
// with the same Keeps.
package feed

import (
	"bufio"
	"context"
	"io"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/metrics"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// Feed writes what a Source reports, filtered and enriched, to an output.
type Feed struct {
	out      *bufio.Writer
	filter   *Filter
	follower *pidmap.Follower
	line     []byte
	// ancestors bounds the lineage written on exec lines (0: none).
	ancestors int
	// Container, when set, keeps only one container's events.
	Container *ContainerFilter
	// Host, when set (--host), names the machine on every line.
	Host []byte
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

	// Sink, when set, is told of every event and every drained ring
	// buffer: record rotates its files there.
	Sink Sink
}

// Sink is told of what the feed does, beside the lines it writes.
type Sink interface {
	// Event is called with every event once it is handled (written or not).
	Event(ev *events.Event) error
	// Idle is called whenever the ring buffer is drained, after a flush.
	Idle() error
}

// warnEvery bounds how often a run of unnamed cgroups is logged.
const warnEvery = time.Minute

// flushInterval bounds how long a written line may wait in the buffer when
// the kernel keeps the reader busy and it never idles.
const flushInterval = time.Second

// New wires src to w through a live tree, dec decoding its records.
// Call Start, then Run.
func New(w io.Writer, src pidmap.Source, dec events.Decoder, filter *Filter, ancestors int, log zerolog.Logger) *Feed {
	f := &Feed{out: bufio.NewWriterSize(w, 256<<10), filter: filter, ancestors: ancestors, lastFlush: time.Now(), log: log}
	if r, ok := dec.Cgroups.(interface{ Unresolved() uint64 }); ok {
		f.unresolved = r.Unresolved
	}
	f.follower = pidmap.NewFollower(src, pidmap.NewTree(pidmap.DefaultExitedKept), dec)
	f.follower.OnEvent = f.event
	f.follower.OnIdle = f.idle
	return f
}

// Start takes the snapshot the tree starts from. The programs are attached:
// what changes meanwhile waits in the ring buffer and follows it. Its proc
// lines are written when the filter keeps TypeProc (--snapshot, record).
func (f *Feed) Start() error { return f.follower.Start() }

// Tree is the live tree the feed keeps.
func (f *Feed) Tree() *pidmap.Tree { return f.follower.Tree }

// Run feeds events until ctx is done, then flushes what was written.
func (f *Feed) Run(ctx context.Context) error {
	err := f.follower.Run(ctx)
	if ferr := f.out.Flush(); err == nil {
		err = ferr
	}
	return err
}

// LogEnd reports the feed's counts once, at its end: nothing is logged per event.
func (f *Feed) LogEnd(log zerolog.Logger, msg string) {
	fl := f.follower
	log.Info().Uint64("events", fl.Events).Uint64("written", f.written).Uint64("lost", fl.Lost).
		Int("resyncs", fl.Resyncs()).Uint64("undecodable", fl.Undecodable).Msg(msg)
}

// event passes ev, which the tree has applied, through the filters to the
// output, then to After.
func (f *Feed) event(ev *events.Event) error {
	if f.metrics != nil {
		f.metrics.Received(ev.Type)
	}
	// What the live tree, which has just applied the event, knows of its
	// subject: its findings (which --flagged keeps), how it entered its
	// namespace, and on exec its lineage.
	p := f.follower.Tree.Subject(ev)
	if p != nil && f.filter.Flagged {
		ev.Findings = p.Findings(ev.Findings)
	}
	if !Keeps(f.Container, f.filter, ev, f.follower.Tree) {
		return f.after(ev)
	}
	if p != nil {
		if !f.filter.Flagged {
			ev.Findings = p.Findings(ev.Findings)
		}
		ev.EnteredBy = p.EnteredBy
		ev.OutsideInitCgroup = p.OutsideInitCgroup()
		if ev.Type == events.TypeExec && f.ancestors > 0 {
			p.FillAncestors(ev, f.ancestors)
		}
	}
	if err := f.Write(ev); err != nil {
		return err
	}
	return f.after(ev)
}

// after tells the sink, when set, of every event.
func (f *Feed) after(ev *events.Event) error {
	if f.Sink == nil {
		return nil
	}
	return f.Sink.Event(ev)
}

// idle runs whenever the ring buffer is drained: a flush, then the sink's.
func (f *Feed) idle() error {
	if err := f.Flush(); err != nil {
		return err
	}
	if f.Sink == nil {
		return nil
	}
	return f.Sink.Idle()
}

// WriteRaw writes b as it is (a recording's header), before the lines.
func (f *Feed) WriteRaw(b []byte) error {
	_, err := f.out.Write(b)
	return err
}

// Buffered is how many bytes written wait in the buffer.
func (f *Feed) Buffered() int { return f.out.Buffered() }

// Write writes ev as a line.
func (f *Feed) Write(ev *events.Event) error {
	ev.Host = f.Host
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
		return f.Flush()
	}
	return nil
}

// Flush writes out what is buffered, and updates the metrics: whenever
// the ring buffer is drained, so lines reach readers promptly.
func (f *Feed) Flush() error {
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
func (f *Feed) warnUnresolved(n uint64) {
	if n == f.warned || time.Since(f.lastWarned) < warnEvery {
		return
	}
	f.log.Warn().Uint64("unnamed", n-f.warned).Uint64("total", n).
		Msg("cgroups and containers could not be named: the system is out of file descriptors or memory; those lines carry attribution_error")
	f.warned, f.lastWarned = n, time.Now()
}

func (f *Feed) countWriteError() {
	if f.metrics != nil {
		f.metrics.WriteError()
	}
}

// AttachMetrics makes m (when serving) count the feed, and read ring (the
// tracer's ring buffer), until the returned detach, which must run before
// the tracer is closed.
func (f *Feed) AttachMetrics(m *metrics.Feed, ring metrics.Ring) (detach func()) {
	if m == nil {
		return func() {}
	}
	m.Attach(ring, f.follower.Synced)
	f.metrics = m
	f.follower.Tree.OnFinding = func(_ *pidmap.Proc, found events.Finding) { m.Found(found.Name) }
	return func() { m.Attach(nil, nil) }
}
