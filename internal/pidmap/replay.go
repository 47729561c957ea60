package pidmap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// ErrNotRecording marks a file that is neither an nspidtrace recording nor
// a `trace` feed.
var ErrNotRecording = errors.New("not an nspidtrace recording or feed")

// At is the instant a replay stops at: an absolute time, an offset from
// the recording's start, or (the zero At) its end.
type At struct {
	Time     int64 // Unix ns, when not 0
	Offset   time.Duration
	Relative bool // Offset counts from the recording's start
}

// ParseAt reads an instant: RFC 3339 (2026-11-23T10:03:00Z), or "+90s", an
// offset from the recording's start; "" is the recording's end.
func ParseAt(s string) (At, error) {
	if s == "" {
		return At{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return At{}, fmt.Errorf("%q is not an offset such as +90s", s)
		}
		return At{Relative: true, Offset: d}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		return At{Time: t.UnixNano()}, nil
	}
	// A time without a zone would be read as one zone or another: which
	// one the user meant is theirs to say.
	if _, zerr := time.Parse("2006-01-02T15:04:05.999999999", strings.Replace(s, " ", "T", 1)); zerr == nil {
		return At{}, fmt.Errorf("%q has no time zone: add Z for UTC (%sZ) or an offset such as +01:00", s, strings.Replace(s, " ", "T", 1))
	}
	return At{}, fmt.Errorf("%q is neither RFC 3339 (2026-11-23T10:03:00Z) nor an offset such as +90s", s)
}

// RangeError is an instant outside the time a recording covers.
type RangeError struct {
	At, Start, End int64 // Unix ns
}

func (e *RangeError) Error() string {
	when := "after the recording's end"
	if e.At < e.Start {
		when = "before the recording's start"
	}
	return fmt.Sprintf("%s is %s: it covers %s to %s", FormatTime(e.At), when, FormatTime(e.Start), FormatTime(e.End))
}

// FormatTime writes Unix ns as the feed does: RFC 3339, UTC, nanoseconds.
func FormatTime(unixNano int64) string {
	return time.Unix(0, unixNano).UTC().Format(time.RFC3339Nano)
}

// Replay is what a replayed recording says about itself.
type Replay struct {
	Header    *events.Header // nil for a feed without a header
	Start     int64          // the header's start, else the first line's time
	End       int64          // the latest time of a line read
	Cutoff    int64          // the instant the tree stands at (0: the end)
	Lines     int            // lines read
	Applied   int            // events applied to the tree
	Skipped   int            // lines of types this version does not know
	Snapshot  bool           // the file holds proc lines: the processes alive at its start
	Truncated bool           // the last line was cut off (the recorder died)
}

// ReplayFile reads a recording or feed from r line by line and applies
// every event up to at to tree, calling each (when not nil) with every
// applied event and its line. Memory stays bounded by the tree: the file is
// streamed. A cut-off last line is tolerated (Replay.Truncated); any other
// bad line is an error naming its number; lines of unknown types are
// skipped. An instant outside the recording is a *RangeError; an empty file
// is ErrNotRecording.
func ReplayFile(r io.Reader, at At, tree *Tree, each func(ev *events.Event, line []byte) error) (*Replay, error) {
	// A snapshot lists processes by PID, not parents first: link them
	// before any event can reparent one, and at the end.
	defer tree.Relink()
	inSnapshot := false
	br := bufio.NewReaderSize(r, 1<<20)
	rep := &Replay{Cutoff: at.Time}
	var ps events.Parser
	var ev events.Event
	var long []byte
	outside := false // at is before the start: read on only to find the end
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return rep, fmt.Errorf("read line %d: %w", rep.Lines+1, err)
		}
		last := errors.Is(err, io.EOF)
		if len(line) == 0 {
			return rep, rep.finish(outside)
		}
		rep.Lines++
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			if last {
				return rep, rep.finish(outside)
			}
			continue
		}
		perr := ps.Parse(text, &ev)
		switch {
		case errors.Is(perr, events.ErrHeader):
			if rep.Lines != 1 {
				return rep, fmt.Errorf("line %d: a header in the middle of the file", rep.Lines)
			}
			h, err := events.ParseHeader(text)
			if err != nil {
				return rep, fmt.Errorf("line 1: %w: %v", ErrNotRecording, err)
			}
			if h.Format != events.RecordFormat || h.Version != 1 {
				return rep, fmt.Errorf("line 1: %w: format %q version %d", ErrNotRecording, h.Format, h.Version)
			}
			rep.Header, rep.Start, rep.End = &h, h.Start, h.Start
			continue
		case errors.Is(perr, events.ErrUnknownType):
			rep.Skipped++
			continue
		case perr != nil && last && !bytes.HasSuffix(line, []byte("\n")) && rep.Lines > 1:
			// The recorder stopped in the middle of writing this line.
			rep.Truncated = true
			return rep, rep.finish(outside)
		case perr != nil && rep.Lines == 1:
			return rep, fmt.Errorf("line 1: %w: %v", ErrNotRecording, perr)
		case perr != nil:
			return rep, fmt.Errorf("line %d: %w", rep.Lines, perr)
		}
		if rep.Start == 0 {
			rep.Start = ev.Time
		}
		rep.End = max(rep.End, ev.Time)
		if at.Relative && rep.Cutoff == 0 {
			rep.Cutoff = rep.Start + int64(at.Offset)
		}
		if outside || (rep.Cutoff != 0 && rep.Cutoff < rep.Start) {
			outside = true
			if last {
				return rep, rep.finish(outside)
			}
			continue
		}
		// The snapshot is the state at the start: it holds at any instant
		// from the start on, though taking it took a moment.
		if rep.Cutoff != 0 && ev.Time > rep.Cutoff && ev.Type != events.TypeProc {
			return rep, nil
		}
		if ev.Type == events.TypeProc {
			rep.Snapshot = true
			inSnapshot = true
		} else if inSnapshot {
			inSnapshot = false
			tree.Relink()
		}
		tree.Apply(&ev)
		rep.Applied++
		if each != nil {
			if err := each(&ev, text); err != nil {
				return rep, err
			}
		}
		if last {
			return rep, rep.finish(outside)
		}
	}
}

// finish checks, at the end of the file, that there was something to read
// and that the instant looked at lies within it.
func (rep *Replay) finish(outside bool) error {
	if rep.Lines == 0 || (rep.Header == nil && rep.Applied == 0 && !outside) {
		return fmt.Errorf("%w: the file is empty", ErrNotRecording)
	}
	if outside || (rep.Cutoff != 0 && rep.Cutoff > rep.End) {
		return &RangeError{At: rep.Cutoff, Start: rep.Start, End: rep.End}
	}
	return nil
}
