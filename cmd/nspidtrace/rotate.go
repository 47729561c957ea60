package main

// record's rotation (--rotate-size, --rotate-age, --keep): a series of
// files, each a complete recording (header, a proc line for every live
// process, the feed, an end line), named by when each started so that
// their names sort as their times do.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/safefile"
)

// seriesTime is the start time in a rotated file's name: UTC, sortable,
// no colons (they trouble copies to other systems).
const seriesTime = "20060102T150405.000Z"

// minRotateSize keeps every file well above its own snapshot of a busy host.
const minRotateSize = 1 << 20

// series names and creates the files of one rotating recording.
type series struct {
	dir, stem, ext string
	size           int64         // start a new file past this many bytes (0: no limit)
	age            time.Duration // or this long after the file's start (0: no limit)
	keep           int           // files to keep, the current one included (0: all)
}

// newSeries reads -o for a rotating recording: a directory holds files
// named nspidtrace-TIME.ndjson; DIR/NAME.EXT makes DIR/NAME-TIME.EXT.
func newSeries(path string, size int64, age time.Duration, keep int) (*series, error) {
	s := &series{size: size, age: age, keep: keep}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		s.dir, s.stem, s.ext = path, "nspidtrace", ".ndjson"
	} else {
		s.dir = filepath.Dir(path)
		base := filepath.Base(path)
		s.ext = filepath.Ext(base)
		s.stem = strings.TrimSuffix(base, s.ext)
		if s.stem == "" {
			return nil, usagef("record -o %s: give a file name to start the series' names with, or a directory", path)
		}
	}
	if st, err := os.Stat(s.dir); err != nil || !st.IsDir() {
		return nil, usagef("record -o %s: %s is not a directory", path, s.dir)
	}
	return s, nil
}

// name is a file that starts at t: the time, then a random part, so that
// nobody who can write to the directory can take the names ahead.
func (s *series) name(t time.Time) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%s-%06x%s", s.stem, t.UTC().Format(seriesTime), rand.Uint32()>>8, s.ext))
}

// pattern is what every file of the series looks like, for messages.
func (s *series) pattern() string {
	return filepath.Join(s.dir, s.stem+"-"+"YYYYMMDDThhmmss.mmmZ-RANDOM"+s.ext)
}

// create makes the file that starts at t, never over an existing one: a
// name taken (by chance, 1 in 16 million) is drawn again.
func (s *series) create(t time.Time) (*os.File, string, error) {
	for range 16 {
		name := s.name(t)
		f, err := createRecording(name, os.O_WRONLY|unix.O_NOFOLLOW|os.O_CREATE|os.O_EXCL)
		var uerr usageError
		if errors.As(err, &uerr) { // exists, or is a link
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("create a file of %s: 16 random names were all taken: someone is taking names in %s", s.pattern(), s.dir)
}

// files lists the series' files in the directory, oldest first: regular
// files named as the series names them (with or without the random part
// older versions did not write) that are the caller's own recordings. A
// file whose name only resembles them, or that another user made (to have
// --keep count it, and remove the caller's), is not one.
func (s *series) files() ([]string, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		mid, ok := strings.CutPrefix(e.Name(), s.stem+"-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if mid, ok = strings.CutSuffix(mid, s.ext); !ok {
			continue
		}
		if when, random, ok := strings.Cut(mid, "-"); ok {
			if _, err := strconv.ParseUint(random, 16, 32); err != nil || len(random) != 6 {
				continue
			}
			mid = when
		}
		if _, err := time.Parse(seriesTime, mid); err != nil {
			continue
		}
		if name := filepath.Join(s.dir, e.Name()); ownRecording(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// ownRecording reports whether path is a regular file of the caller's
// that starts with a recording's header.
func ownRecording(path string) bool {
	f, err := safefile.OpenRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil || int(st.Uid) != os.Geteuid() {
		return false
	}
	line, err := bufio.NewReaderSize(io.LimitReader(f, 4096), 4096).ReadSlice('\n')
	if err != nil {
		return false
	}
	h, err := events.ParseHeader(line[:len(line)-1])
	return err == nil && h.Format == events.RecordFormat
}

// prune removes the oldest files beyond --keep, never current, and
// returns what it removed.
func (s *series) prune(current string) ([]string, error) {
	if s.keep == 0 {
		return nil, nil
	}
	names, err := s.files()
	if err != nil {
		return nil, err
	}
	// The current file counts, though its header may not be on disk yet.
	if !slices.Contains(names, current) {
		names = append(names, current)
		slices.Sort(names)
	}
	var removed []string
	for _, name := range names {
		if len(names)-len(removed) <= s.keep || name == current {
			break
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// parseSize reads a size such as 512M: a number of bytes, or with K, M, G
// or T (powers of 1024, an optional i and B: 64MiB, 1GB).
func parseSize(s string) (int64, error) {
	num := strings.TrimRight(strings.ToUpper(s), "IB")
	shift := 0
	if n := len(num); n > 0 {
		if i := strings.IndexByte("KMGT", num[n-1]); i >= 0 {
			shift, num = 10*(i+1), num[:n-1]
		}
	}
	n, err := strconv.ParseUint(num, 10, 63-shift)
	if err != nil || num == "" {
		return 0, fmt.Errorf("%q is not a size such as 100M or 2G", s)
	}
	return int64(n) << shift, nil
}

// recorder is where record writes: one file, or the current file of a
// series. The feed's buffer writes into it; it counts the bytes.
type recorder struct {
	series *series // nil: one file
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
	return s != nil && (s.size > 0 && r.bytes+int64(buffered) >= s.size ||
		s.age > 0 && now.Sub(r.start) >= s.age)
}

// begin writes a file's first lines through f: the header, and when the
// feed's tree is already live (a later file of a series), a proc line for
// each of its processes, parents first, as of now.
func (r *recorder) begin(f *feed, now time.Time) error {
	header := recordHeader(r.host, now)
	if _, err := f.out.Write(events.AppendHeader(nil, &header)); err != nil {
		return err
	}
	if r.start.IsZero() {
		r.start = now
		return nil // the follower's first snapshot writes the proc lines
	}
	r.start = now
	var ev events.Event
	var err error
	f.tree().Walk(func(p *pidmap.Proc, _ int) {
		if err == nil {
			p.Fill(&ev, now.UnixNano())
			err = f.write(&ev)
		}
	})
	return err
}

// end closes the current file as a complete recording: an end line, and
// everything on disk.
func (r *recorder) end(f *feed, now time.Time) error {
	err := f.write(&events.Event{Type: events.TypeEnd, Time: now.UnixNano()})
	if err == nil {
		err = f.out.Flush()
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
func (r *recorder) rotate(f *feed, now time.Time) (removed []string, err error) {
	if err := r.end(f, now); err != nil {
		return nil, fmt.Errorf("end %s: %w", r.path, err)
	}
	file, name, err := r.series.create(now)
	if err != nil {
		return nil, err
	}
	r.file, r.path, r.bytes = file, name, 0
	r.rotated++
	if err := r.begin(f, now); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	removed, err = r.series.prune(name)
	if err != nil {
		return removed, fmt.Errorf("remove the oldest recordings beyond --keep %d: %w", r.series.keep, err)
	}
	return removed, nil
}
