package recording

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// lines is the feed as the Writer sees it: a buffer over the Writer, and
// a tree.
type lines struct {
	buf  *bufio.Writer
	tree *pidmap.Tree
}

func (l *lines) WriteRaw(b []byte) error { _, err := l.buf.Write(b); return err }
func (l *lines) Write(ev *events.Event) error {
	_, err := l.buf.Write(events.AppendJSON(nil, ev))
	return err
}
func (l *lines) Flush() error       { return l.buf.Flush() }
func (l *lines) Buffered() int      { return l.buf.Buffered() }
func (l *lines) Tree() *pidmap.Tree { return l.tree }

// startSeries starts a recording of series at testenv.T0, the feed's tree
// being tree, and its rotation.
func startSeries(t *testing.T, series *Series, tree *pidmap.Tree) (*Writer, *lines, *Rotation) {
	t.Helper()
	w := &Writer{Series: series, Host: "node-1"}
	start := time.Unix(0, testenv.T0)
	if err := w.Open("", 0, start); err != nil {
		t.Fatal(err)
	}
	l := &lines{buf: bufio.NewWriterSize(w, 64<<10), tree: tree}
	if err := w.Begin(l, start); err != nil {
		t.Fatal(err)
	}
	return w, l, w.Rotation(l, zerolog.Nop())
}

// feed writes ev as the feed does, and tells the rotation.
func feed(t *testing.T, l *lines, rot *Rotation, ev *events.Event) {
	t.Helper()
	if err := l.Write(ev); err != nil {
		t.Fatal(err)
	}
	if err := rot.Event(ev); err != nil {
		t.Fatal(err)
	}
}

// feedExecs feeds n exec events of about 200 bytes, a millisecond apart,
// calling after (when not nil) after each.
func feedExecs(t *testing.T, l *lines, rot *Rotation, n int, after func(i int)) {
	t.Helper()
	for i := range n {
		ev := testenv.HostProc(2, 1, nil)
		ev.Type, ev.Time = events.TypeExec, testenv.T0+int64(i)*1e6
		feed(t, l, rot, ev)
		if after != nil {
			after(i)
		}
	}
}

// TestRotationMakesCompleteFiles: a series rotated by size and age writes
// files that each begin with a header and a proc line of every live
// process, and end with an end line; proc lines never start a new file;
// --keep removes the oldest; a removed file ends the recording.
func TestRotationMakesCompleteFiles(t *testing.T) {
	dir := t.TempDir()
	series, err := NewSeries(dir, 4096, time.Hour, 2)
	if err != nil {
		t.Fatal(err)
	}
	tree := pidmap.NewTree(16)
	for _, e := range []*events.Event{testenv.HostProc(1, 0, nil), testenv.HostProc(2, 1, nil)} {
		tree.Apply(e)
	}
	w, l, rot := startSeries(t, series, tree)
	// 100 events of about 200 bytes: 20 kB through files of 4 kB.
	feedExecs(t, l, rot, 100, nil)
	if err := w.End(l, time.Unix(0, testenv.T0).Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	names, err := series.Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 {
		t.Fatalf("%d files kept, want 2 (--keep 2): %v", len(names), names)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.TrimSpace(string(data))
		ls := strings.Split(text, "\n")
		if !strings.Contains(ls[0], `"hostname":"node-1"`) || !strings.Contains(ls[1], `"type":"proc"`) || !strings.Contains(ls[2], `"type":"proc"`) ||
			!strings.Contains(ls[len(ls)-1], `"type":"end"`) {
			t.Errorf("%s is not a complete recording:\n%s", name, text)
		}
		if len(data) > 4096+1024 {
			t.Errorf("%s holds %d bytes: rotation at 4096 came late", name, len(data))
		}
	}

}

// TestRemovedRecordingEnds: a recording whose file was removed ends at the
// next check, rather than write into nothing.
func TestRemovedRecordingEnds(t *testing.T) {
	path := t.TempDir() + "/r.ndjson"
	flags, err := Flags(path, false)
	if err != nil {
		t.Fatal(err)
	}
	w := &Writer{}
	if err := w.Open(path, flags, time.Now()); err != nil {
		t.Fatal(err)
	}
	defer w.File.Close()
	l := &lines{buf: bufio.NewWriter(w), tree: pidmap.NewTree(16)}
	rot := w.Rotation(l, zerolog.Nop())
	rot.lastCheck = time.Time{}
	if err := rot.Idle(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	rot.lastCheck = time.Time{}
	if err := rot.Idle(); err == nil || !strings.Contains(err.Error(), "was removed") {
		t.Errorf("a removed file: %v, want an error that says so", err)
	}
}

// TestRotationOfABigSnapshot: on a machine whose proc lines alone outgrow
// --rotate-size, each file holds as much of the feed again as its first
// lines before the next starts, rather than end at once and write snapshot
// after snapshot without end (1 MiB beside 10,000 processes filled 73 GB
// in minutes).
func TestRotationOfABigSnapshot(t *testing.T) {
	dir := t.TempDir()
	series, err := NewSeries(dir, 4096, time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	tree := pidmap.NewTree(16)
	procs := []*events.Event{testenv.HostProc(1, 0, nil)}
	for pid := uint32(2); pid < 100; pid++ {
		procs = append(procs, testenv.HostProc(pid, 1, nil))
	}
	w, l, rot := startSeries(t, series, tree)
	// The follower's first snapshot: proc lines, which never rotate.
	for _, ev := range procs {
		tree.Apply(ev)
		feed(t, l, rot, ev)
	}
	var snapshot int64
	feedExecs(t, l, rot, 1000, func(i int) {
		if i == 0 {
			snapshot = w.base
		}
	})
	if err := w.End(l, time.Unix(0, testenv.T0).Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	names, err := series.Files()
	if err != nil {
		t.Fatal(err)
	}
	if snapshot < 4*4096 {
		t.Fatalf("the snapshot takes %d bytes: the test wants it far beyond the 4096 of --rotate-size", snapshot)
	}
	// 1,000 lines of the feed, each file ending at twice its snapshot.
	var feed int64
	for _, name := range names {
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		feed += st.Size() - snapshot
	}
	if most := feed/snapshot + 2; int64(len(names)) > most {
		t.Errorf("%d files for %d bytes of feed beside snapshots of %d: want at most %d", len(names), feed, snapshot, most)
	}
}
