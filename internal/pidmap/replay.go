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
	// Stop, when set, is asked before each event after a snapshot, with the
	// tree standing as `--at` just before that event would leave it; true
	// ends the replay there. It may block: the tree stands still meanwhile
	// (watch's time cursor parks a replay this way).
	Stop func(next *events.Event) bool
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

// Instant reads at against the recording: its time, or its offset from the
// start; an instant outside the recording is a *RangeError.
func (rep *Replay) Instant(at At) (int64, error) {
	t := at.Time
	if at.Relative {
		t = rep.Start + int64(at.Offset)
	}
	if t < rep.Start || t > rep.End {
		return t, &RangeError{At: t, Start: rep.Start, End: rep.End}
	}
	return t, nil
}

// Replay is what a replayed recording says about itself.
type Replay struct {
	Header    *events.Header // the first file's; nil for a feed without a header
	Start     int64          // the header's start, else the first line's time
	End       int64          // the latest time of a line read
	Cutoff    int64          // the instant the tree stands at (0: the end)
	Lines     int            // lines read
	Applied   int            // events applied to the tree
	Skipped   int            // lines of types this version does not know
	Snapshot  bool           // the file holds proc lines: the processes alive at its start
	Truncated bool           // a file's last line was cut off (the recorder died)
	Files     int            // files read

	outside bool // the cutoff is before the start: read on only to find the end
}

// Input is one file of a timeline, named for errors.
type Input struct {
	Name string
	R    io.Reader
}

// MaxLine is the longest line a replay reads (1 MiB): the longest the feed
// writes is a few tens of KiB.
const MaxLine = 1 << 20

// ReplayFile reads a recording or feed from r line by line and applies
// every event up to at to tree, calling each (when not nil) with every
// applied event and its line. Memory stays bounded by the tree: the file is
// streamed. A cut-off last line is tolerated (Replay.Truncated); any other
// bad line is an error naming its number; lines of unknown types are
// skipped. An instant outside the recording is a *RangeError; an empty file
// is ErrNotRecording.
func ReplayFile(r io.Reader, at At, tree *Tree, each func(ev *events.Event, line []byte) error) (*Replay, error) {
	return ReplayFiles([]Input{{R: r}}, at, tree, each)
}

// ReplayFiles replays recordings one after the other as one timeline: the
// files a rotating `record` wrote, oldest first. Each file after the first
// starts with a snapshot, which resyncs the tree as after lost events:
// processes it does not list exited while no file was written. Files of
// two machines do not make a timeline and are refused. Errors name the
// file when there are several.
func ReplayFiles(files []Input, at At, tree *Tree, each func(ev *events.Event, line []byte) error) (*Replay, error) {
	// A snapshot lists processes by PID, not parents first: link them
	// before any event can reparent one, and at the end.
	defer tree.Relink()
	rep := &Replay{Cutoff: at.Time}
	for i, in := range files {
		done, err := rep.file(in.R, i, at, tree, each)
		if err != nil && len(files) > 1 {
			err = fmt.Errorf("%s: %w", in.Name, err)
		}
		if err != nil || done {
			return rep, err
		}
	}
	return rep, rep.finish()
}

// file replays one file of a timeline; done says the cutoff was passed.
func (rep *Replay) file(r io.Reader, index int, at At, tree *Tree, each func(ev *events.Event, line []byte) error) (done bool, err error) {
	rep.Files++
	f := &replayFile{rep: rep, index: index, at: at, tree: tree, each: each}
	defer func() {
		if f.inSnapshot {
			f.endSnapshot(rep.End)
		}
	}()
	// The buffer holds the longest line: a longer one is refused, never
	// gathered (a file of one 10 GB line would take 10 GB).
	br := bufio.NewReaderSize(r, MaxLine+1)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return false, fmt.Errorf("line %d: longer than %d bytes, which no nspidtrace line is", f.lineNo+1, MaxLine)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read line %d: %w", f.lineNo+1, err)
		}
		last := errors.Is(err, io.EOF)
		if len(line) == 0 {
			return false, rep.emptyFile(index, f.lineNo)
		}
		f.lineNo++
		rep.Lines++
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			if last {
				return false, rep.emptyFile(index, f.lineNo)
			}
			continue
		}
		// A last line without its newline is one the recorder stopped
		// in the middle of writing.
		done, stop, err := f.line(text, last && !bytes.HasSuffix(line, []byte("\n")))
		if done || stop || err != nil || last {
			return done, err
		}
	}
}

// replayFile is the state of one file's replay.
type replayFile struct {
	rep   *Replay
	index int // in the timeline
	at    At
	tree  *Tree
	each  func(ev *events.Event, line []byte) error

	lineNo     int
	resync     uint32 // the generation of a later file's snapshot
	inSnapshot bool
	ps         events.Parser
	ev         events.Event
	clean      []byte
}

// line replays one line. done says the cutoff was passed; stop that the
// rest of the file is not read (a cut-off last line, or an instant before
// the recording). cut says the line is the file's last and has no newline.
func (f *replayFile) line(text []byte, cut bool) (done, stop bool, err error) {
	rep, ev := f.rep, &f.ev
	perr := f.ps.Parse(text, ev)
	switch {
	case errors.Is(perr, events.ErrHeader):
		return false, false, f.header(text)
	case errors.Is(perr, events.ErrUnknownType):
		rep.Skipped++
		return false, false, nil
	case perr != nil && cut && f.lineNo > 1:
		rep.Truncated = true
		return false, true, nil
	case perr != nil && f.lineNo == 1:
		return false, false, fmt.Errorf("line 1: %w: %v", ErrNotRecording, perr)
	case perr != nil:
		return false, false, fmt.Errorf("line %d: %w", f.lineNo, perr)
	}
	if rep.Start == 0 {
		rep.Start = ev.Time
	}
	rep.End = max(rep.End, ev.Time)
	if f.at.Relative && rep.Cutoff == 0 {
		rep.Cutoff = rep.Start + int64(f.at.Offset)
	}
	if rep.outside || (rep.Cutoff != 0 && rep.Cutoff < rep.Start) {
		rep.outside = true
		return false, false, nil
	}
	if ev.Type == events.TypeProc {
		rep.Snapshot = true
		if !f.inSnapshot && f.index > 0 {
			f.resync = f.tree.beginResync()
		}
		f.inSnapshot = true
	} else {
		if f.inSnapshot {
			f.endSnapshot(ev.Time)
		}
		// The snapshot is the state at the start: it holds at any
		// instant from the start on, though taking it took a moment.
		if rep.Cutoff != 0 && ev.Time > rep.Cutoff || f.at.Stop != nil && f.at.Stop(ev) {
			return true, false, nil
		}
	}
	f.tree.Apply(ev)
	rep.Applied++
	if f.each != nil {
		// What is printed of a line is what the encoder would print:
		// the same JSON, valid UTF-8, no control characters.
		f.clean = events.AppendClean(f.clean[:0], text)
		return false, false, f.each(ev, f.clean)
	}
	return false, false, nil
}

// header reads a header line: the file's first, and of the same machine as
// the timeline's first file.
func (f *replayFile) header(text []byte) error {
	rep := f.rep
	if f.lineNo != 1 {
		return fmt.Errorf("line %d: a header in the middle of the file", f.lineNo)
	}
	h, err := events.ParseHeader(text)
	if err != nil {
		return fmt.Errorf("line 1: %w: %v", ErrNotRecording, err)
	}
	if h.Format != events.RecordFormat || h.Version != 1 {
		return fmt.Errorf("line 1: %w: format %q version %d", ErrNotRecording, h.Format, h.Version)
	}
	if rep.Header == nil {
		rep.Header, rep.Start, rep.End = &h, h.Start, h.Start
	} else if h.Hostname != rep.Header.Hostname {
		return fmt.Errorf("recorded on %q, the files before it on %q: files of two machines are not one timeline", h.Hostname, rep.Header.Hostname)
	}
	return nil
}

// endSnapshot ends a snapshot at instant when: a later file's resyncs the
// tree (what it does not list exited meanwhile); the first's is linked.
func (f *replayFile) endSnapshot(when int64) {
	f.inSnapshot = false
	if f.resync != 0 {
		f.tree.endResync(f.resync, when)
		f.resync = 0
	} else {
		f.tree.Relink()
	}
}

// emptyFile ends a file at line n: a file with no line at all is not a
// recording, unless a timeline's later file (a recorder killed as it
// rotated leaves one).
func (rep *Replay) emptyFile(index, n int) error {
	if n == 0 && index == 0 {
		return fmt.Errorf("%w: the file is empty", ErrNotRecording)
	}
	return nil
}

// finish checks, at the end of the timeline, that there was something to
// read and that the instant looked at lies within it.
func (rep *Replay) finish() error {
	if rep.Lines == 0 || (rep.Header == nil && rep.Applied == 0 && !rep.outside) {
		return fmt.Errorf("%w: the file is empty", ErrNotRecording)
	}
	if rep.outside || (rep.Cutoff != 0 && rep.Cutoff > rep.End) {
		return &RangeError{At: rep.Cutoff, Start: rep.Start, End: rep.End}
	}
	return nil
}
