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
	if err != nil {
		return At{}, fmt.Errorf("%q is neither RFC 3339 (2026-11-23T10:03:00Z) nor an offset such as +90s", s)
	}
	return At{Time: t.UnixNano()}, nil
}

// Replay is what a replayed recording says about itself.
type Replay struct {
	Header    *events.Header // nil for a feed without a header
	Start     int64          // the header's start, else the first line's time
	Cutoff    int64          // the instant the tree stands at (0: the end)
	Lines     int            // lines read
	Applied   int            // events applied to the tree
	Truncated bool           // the last line was cut off (the recorder died)
}

// ReplayFile reads a recording or feed from r line by line and applies
// every event up to at to tree, calling each (when not nil) with every
// applied event and its line. Memory stays bounded by the tree: the file is
// streamed. A cut-off last line is tolerated (Replay.Truncated); any other
// bad line is an error naming its number.
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
			return rep, nil
		}
		rep.Lines++
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			if last {
				return rep, nil
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
			rep.Header, rep.Start = &h, h.Start
			continue
		case perr != nil && last && !bytes.HasSuffix(line, []byte("\n")) && rep.Lines > 1:
			// The recorder stopped in the middle of writing this line.
			rep.Truncated = true
			return rep, nil
		case perr != nil && rep.Lines == 1:
			return rep, fmt.Errorf("line 1: %w: %v", ErrNotRecording, perr)
		case perr != nil:
			return rep, fmt.Errorf("line %d: %w", rep.Lines, perr)
		}
		if rep.Start == 0 {
			rep.Start = ev.Time
		}
		if at.Relative && rep.Cutoff == 0 {
			rep.Cutoff = rep.Start + int64(at.Offset)
		}
		// The snapshot is the state at the start: it holds at any instant
		// from the start on, though taking it took a moment.
		if rep.Cutoff != 0 && ev.Time > rep.Cutoff && (ev.Type != events.TypeProc || rep.Cutoff < rep.Start) {
			return rep, nil
		}
		if ev.Type == events.TypeProc {
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
			return rep, nil
		}
	}
}
