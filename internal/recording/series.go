package recording

// The series of a rotating record (--rotate-size, --rotate-age, --keep):
// each file a complete recording, named by when it started so that names
// sort as times do.

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
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/safefile"
)

// seriesTime is the start time in a rotated file's name: UTC, sortable,
// no colons (they trouble copies to other systems).
const seriesTime = "20060102T150405.000Z"

// MinRotateSize keeps every file well above its own snapshot of a busy host.
const MinRotateSize = 1 << 20

// Series names and creates the files of one rotating recording.
type Series struct {
	dir, stem, ext string
	Size           int64         // start a new file past this many bytes (0: no limit)
	Age            time.Duration // or this long after the file's start (0: no limit)
	Keep           int           // files to keep, the current one included (0: all)
}

// NewSeries reads -o for a rotating recording: a directory holds files
// named nspidtrace-TIME.ndjson; DIR/NAME.EXT makes DIR/NAME-TIME.EXT.
func NewSeries(path string, size int64, age time.Duration, keep int) (*Series, error) {
	s := &Series{Size: size, Age: age, Keep: keep}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		s.dir, s.stem, s.ext = path, "nspidtrace", ".ndjson"
	} else {
		s.dir = filepath.Dir(path)
		base := filepath.Base(path)
		s.ext = filepath.Ext(base)
		s.stem = strings.TrimSuffix(base, s.ext)
		if s.stem == "" {
			return nil, fault.Usagef("record -o %s: give a file name to start the series' names with, or a directory", path)
		}
	}
	if st, err := os.Stat(s.dir); err != nil || !st.IsDir() {
		return nil, fault.Usagef("record -o %s: %s is not a directory", path, s.dir)
	}
	return s, nil
}

// name is a file that starts at t: the time, then a random part, so that
// nobody who can write to the directory can take the names ahead.
func (s *Series) name(t time.Time) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s-%s-%06x%s", s.stem, t.UTC().Format(seriesTime), rand.Uint32()>>8, s.ext))
}

// Pattern is what every file of the series looks like, for messages.
func (s *Series) Pattern() string {
	return filepath.Join(s.dir, s.stem+"-"+"YYYYMMDDThhmmss.mmmZ-RANDOM"+s.ext)
}

// Create makes the file that starts at t, never over an existing one: a
// name taken (by chance, 1 in 16 million) is drawn again.
func (s *Series) Create(t time.Time) (*os.File, string, error) {
	for range 16 {
		name := s.name(t)
		f, err := Create(name, os.O_WRONLY|unix.O_NOFOLLOW|os.O_CREATE|os.O_EXCL)
		var uerr fault.Usage
		if errors.As(err, &uerr) { // exists, or is a link
			continue
		}
		return f, name, err
	}
	return nil, "", fmt.Errorf("create a file of %s: 16 random names were all taken: someone is taking names in %s", s.Pattern(), s.dir)
}

// Files lists the series' files in the directory, oldest first: regular
// files named as the series names them (with or without the random part
// older versions did not write) that are the caller's own recordings. A
// file whose name only resembles them, or that another user made (to have
// --keep count it, and remove the caller's), is not one.
func (s *Series) Files() ([]string, error) {
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

// Prune removes the oldest files beyond --keep, never current, and
// returns what it removed.
func (s *Series) Prune(current string) ([]string, error) {
	if s.Keep == 0 {
		return nil, nil
	}
	names, err := s.Files()
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
		if len(names)-len(removed) <= s.Keep || name == current {
			break
		}
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// ParseSize reads a size such as 512M: a number of bytes, or with K, M, G
// or T (powers of 1024, an optional i and B: 64MiB, 1GB).
func ParseSize(s string) (int64, error) {
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
