package recording

import (
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// record's files as the feed writes them: one file, or a series rotated by
// size or age, each a complete recording (header, a proc line for every
// live process, the feed, an end line).

// Lines is the feed (feed.Feed) as the writer writes through it: its
// buffer, and the live tree a new file's proc lines come from.
type Lines interface {
	WriteRaw(b []byte) error
	Write(ev *events.Event) error
	Flush() error
	Buffered() int
	Tree() *pidmap.Tree
}

// Writer is where record writes: one file, or the current file of a
// series. The feed's buffer writes into it; it counts the bytes.
type Writer struct {
	Series *Series // nil: one file
	Host   string  // the header's hostname ("": this machine's)
	Path   string  // the current file
	File   *os.File
	start  time.Time
	bytes  int64
	// base is what the file's first lines (header, a proc line for every
	// live process) took, known once the feed moved past them.
	base      int64
	baseKnown bool
}

// Write writes p to the current file, counting its bytes.
func (r *Writer) Write(p []byte) (int, error) {
	n, err := r.File.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Due reports whether the current file is full or old enough to end;
// buffered is what the feed holds for it still. A file is full at the
// series' size, but never before it holds as much of the feed as its first
// lines take: on a machine whose processes' proc lines alone reach the
// size, every new file would be full at once, and record would write
// snapshot after snapshot, without end.
func (r *Writer) Due(buffered int, now time.Time) bool {
	s := r.Series
	size := r.bytes + int64(buffered)
	return s != nil && (s.Size > 0 && size >= s.Size && size >= 2*r.base ||
		s.Age > 0 && now.Sub(r.start) >= s.Age)
}

// Begin writes a file's first lines through f: the header, and when the
// feed's tree is already live (a later file of a series), a proc line for
// each of its processes, parents first, as of now.
func (r *Writer) Begin(f Lines, now time.Time) error {
	header := NewHeader(r.Host, now)
	if err := f.WriteRaw(events.AppendHeader(nil, &header)); err != nil {
		return err
	}
	if r.start.IsZero() {
		r.start = now
		return nil // the follower's first snapshot writes the proc lines
	}
	r.start = now
	var ev events.Event
	var err error
	f.Tree().Walk(func(p *pidmap.Proc, _ int) {
		if err == nil {
			p.Fill(&ev, now.UnixNano())
			err = f.Write(&ev)
		}
	})
	return err
}

// End closes the current file as a complete recording: an end line, and
// everything on disk.
func (r *Writer) End(f Lines, now time.Time) error {
	err := f.Write(&events.Event{Type: events.TypeEnd, Time: now.UnixNano()})
	if err == nil {
		err = f.Flush()
	}
	if err == nil {
		err = r.File.Sync()
	}
	if cerr := r.File.Close(); err == nil {
		err = cerr
	}
	return err
}

// Rotate ends the current file and starts the next, then prunes.
func (r *Writer) Rotate(f Lines, now time.Time) (removed []string, err error) {
	if err := r.End(f, now); err != nil {
		return nil, fmt.Errorf("end %s: %w", r.Path, err)
	}
	file, name, err := r.Series.Create(now)
	if err != nil {
		return nil, err
	}
	r.File, r.Path, r.bytes, r.base, r.baseKnown = file, name, 0, 0, false
	if err := r.Begin(f, now); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	removed, err = r.Series.Prune(name)
	if err != nil {
		return removed, fmt.Errorf("remove the oldest recordings beyond --keep %d: %w", r.Series.Keep, err)
	}
	return removed, nil
}

// Open creates the first file: the series' first, or path with Flags'
// flags.
func (r *Writer) Open(path string, flags int, now time.Time) (err error) {
	if r.Series != nil {
		r.File, r.Path, err = r.Series.Create(now)
		return err
	}
	r.File, err = Create(path, flags)
	r.Path = path
	return err
}

// Rotation rotates a Writer's files as the feed writes through it: each
// event may fill the file or make it old enough, as of the event's own time
// (no clock read per event; a snapshot is never cut in two), and on a quiet
// system the file still ages, checked whenever the ring buffer is drained,
// when the file's removal is noticed too (writes to it succeed, into
// nothing). It is one of the feed's sinks (feed.Sink).
type Rotation struct {
	w         *Writer
	lines     Lines
	log       zerolog.Logger
	lastCheck time.Time
	warned    bool // that first lines outgrow the size
}

// Rotation returns r's rotation through f.
func (r *Writer) Rotation(f Lines, log zerolog.Logger) *Rotation {
	return &Rotation{w: r, lines: f, log: log, lastCheck: time.Now()}
}

func (ro *Rotation) rotate(now time.Time) error {
	r := ro.w
	if r.Series == nil {
		return nil
	}
	if !r.baseKnown {
		// Called past the snapshot: the file's first lines are written.
		r.base, r.baseKnown = r.bytes+int64(ro.lines.Buffered()), true
		if r.Series.Size > 0 && r.base >= r.Series.Size && !ro.warned {
			ro.warned = true
			ro.log.Warn().Int64("first_lines", r.base).Int64("rotate_size", r.Series.Size).
				Msg("a file's first lines (a proc line for every live process) take more than --rotate-size: each file holds as much of the feed again before the next starts")
		}
	}
	if !r.Due(ro.lines.Buffered(), now) {
		return nil
	}
	old := r.Path
	removed, err := r.Rotate(ro.lines, now)
	if err != nil {
		return err
	}
	ro.log.Info().Str("ended", old).Str("file", r.Path).Strs("removed", removed).Msg("recording continues in a new file")
	return nil
}

// Event is told of every event once the feed has handled it.
func (ro *Rotation) Event(ev *events.Event) error {
	if ro.w.Series == nil || ev.Type == events.TypeProc {
		return nil
	}
	return ro.rotate(time.Unix(0, ev.Time))
}

// Idle runs whenever the ring buffer is drained, after a flush.
func (ro *Rotation) Idle() error {
	if err := ro.rotate(time.Now()); err != nil {
		return err
	}
	if time.Since(ro.lastCheck) < time.Second {
		return nil
	}
	ro.lastCheck = time.Now()
	var st unix.Stat_t
	if err := unix.Fstat(int(ro.w.File.Fd()), &st); err == nil && st.Nlink == 0 {
		return fmt.Errorf("%s was removed", ro.w.Path)
	}
	return nil
}
