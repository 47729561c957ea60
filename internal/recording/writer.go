package recording

import (
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// record's files as the feed writes them: one file, or a series rotated by
// size or age, each a complete recording (header, a proc line for every
// live process, the feed, an end line).

// Writer is where record writes: one file, or the current file of a
// series. The feed's buffer writes into it; it counts the bytes.
type Writer struct {
	Series *Series // nil: one file
	Host   string  // the header's hostname ("": this machine's)
	Path   string  // the current file
	File   *os.File
	start  time.Time
	bytes  int64
}

// Write writes p to the current file, counting its bytes.
func (r *Writer) Write(p []byte) (int, error) {
	n, err := r.File.Write(p)
	r.bytes += int64(n)
	return n, err
}

// Due reports whether the current file is full or old enough to end;
// buffered is what the feed holds for it still.
func (r *Writer) Due(buffered int, now time.Time) bool {
	s := r.Series
	return s != nil && (s.Size > 0 && r.bytes+int64(buffered) >= s.Size ||
		s.Age > 0 && now.Sub(r.start) >= s.Age)
}

// Begin writes a file's first lines through f: the header, and when the
// feed's tree is already live (a later file of a series), a proc line for
// each of its processes, parents first, as of now.
func (r *Writer) Begin(f *feed.Feed, now time.Time) error {
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
func (r *Writer) End(f *feed.Feed, now time.Time) error {
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
func (r *Writer) Rotate(f *feed.Feed, now time.Time) (removed []string, err error) {
	if err := r.End(f, now); err != nil {
		return nil, fmt.Errorf("end %s: %w", r.Path, err)
	}
	file, name, err := r.Series.Create(now)
	if err != nil {
		return nil, err
	}
	r.File, r.Path, r.bytes = file, name, 0
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

// Hook makes f rotate r's files as it writes: each event may fill the file
// or make it old enough, as of the event's own time (no clock read per
// event; a snapshot is never cut in two), and on a quiet system the file
// still ages, checked whenever the ring buffer is drained, when the
// file's removal is noticed too (writes to it succeed, into nothing).
func (r *Writer) Hook(f *feed.Feed, log zerolog.Logger) {
	rotate := func(now time.Time) error {
		if !r.Due(f.Buffered(), now) {
			return nil
		}
		old := r.Path
		removed, err := r.Rotate(f, now)
		if err != nil {
			return err
		}
		log.Info().Str("ended", old).Str("file", r.Path).Strs("removed", removed).Msg("recording continues in a new file")
		return nil
	}
	f.After = func(ev *events.Event) error {
		if r.Series == nil || ev.Type == events.TypeProc {
			return nil
		}
		return rotate(time.Unix(0, ev.Time))
	}
	lastCheck := time.Now()
	f.Idle = func() error {
		if err := rotate(time.Now()); err != nil {
			return err
		}
		if time.Since(lastCheck) < time.Second {
			return nil
		}
		lastCheck = time.Now()
		var st unix.Stat_t
		if err := unix.Fstat(int(r.File.Fd()), &st); err == nil && st.Nlink == 0 {
			return fmt.Errorf("%s was removed", r.Path)
		}
		return nil
	}
}
