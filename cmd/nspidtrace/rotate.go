package main

// record's rotation (--rotate-size, --rotate-age, --keep): a series of
// files, each a complete recording (header, a proc line for every live
// process, the feed, an end line), named by when each started so that
// their names sort as their times do.

import (
	"fmt"
	"os"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/recording"
)

// recorder is where record writes: one file, or the current file of a
// series. The feed's buffer writes into it; it counts the bytes.
type recorder struct {
	series *recording.Series // nil: one file
	host   string
	path   string
	file   *os.File
	start  time.Time
	bytes  int64
	// rotated counts files started after the first.
	rotated int
}

func (r *recorder) Write(p []byte) (int, error) {
	n, err := r.file.Write(p)
	r.bytes += int64(n)
	return n, err
}

// due reports whether the current file is full or old enough to end;
// buffered is what the feed holds for it still.
func (r *recorder) due(buffered int, now time.Time) bool {
	s := r.series
	return s != nil && (s.Size > 0 && r.bytes+int64(buffered) >= s.Size ||
		s.Age > 0 && now.Sub(r.start) >= s.Age)
}

// begin writes a file's first lines through f: the header, and when the
// feed's tree is already live (a later file of a series), a proc line for
// each of its processes, parents first, as of now.
func (r *recorder) begin(f *feed.Feed, now time.Time) error {
	header := recording.NewHeader(r.host, now)
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

// end closes the current file as a complete recording: an end line, and
// everything on disk.
func (r *recorder) end(f *feed.Feed, now time.Time) error {
	err := f.Write(&events.Event{Type: events.TypeEnd, Time: now.UnixNano()})
	if err == nil {
		err = f.Flush()
	}
	if err == nil {
		err = r.file.Sync()
	}
	if cerr := r.file.Close(); err == nil {
		err = cerr
	}
	return err
}

// rotate ends the current file and starts the next, then prunes.
func (r *recorder) rotate(f *feed.Feed, now time.Time) (removed []string, err error) {
	if err := r.end(f, now); err != nil {
		return nil, fmt.Errorf("end %s: %w", r.path, err)
	}
	file, name, err := r.series.Create(now)
	if err != nil {
		return nil, err
	}
	r.file, r.path, r.bytes = file, name, 0
	r.rotated++
	if err := r.begin(f, now); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	removed, err = r.series.Prune(name)
	if err != nil {
		return removed, fmt.Errorf("remove the oldest recordings beyond --keep %d: %w", r.series.Keep, err)
	}
	return removed, nil
}
