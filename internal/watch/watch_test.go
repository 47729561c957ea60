package watch

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

const (
	hostNS = 4026531836
	ctrNS  = 4026532001
)

var base = time.Date(2026, 11, 23, 10, 3, 0, 0, time.UTC).UnixNano()

// exec is a process's exec event at sec seconds after base.
func exec(pid, ppid uint32, sec int, comm string, nspid ...uint32) *events.Event {
	e := &events.Event{Type: events.TypeExec, PID: pid, TID: pid, PPID: ppid, Levels: len(nspid),
		StartBoot: uint64(pid) * 1000, Start: base + int64(sec)*1e9, Time: base + int64(sec)*1e9, UID: 1000}
	copy(e.NSPid[:], nspid)
	copy(e.PidNS[:], []uint32{hostNS, ctrNS}[:len(nspid)])
	e.SetComm(comm)
	e.ArgsLen = uint16(copy(e.Args[:], comm+"\x00--flag\x00"))
	return e
}

// sample is: init(1) ─ shell(100) ─ {app(200/1) ─ worker(201/2), tool(300)},
// and job(400, under shell) that exited with 7 at second 58.
func sample() *pidmap.Tree {
	t := pidmap.NewTree(16)
	for _, e := range []*events.Event{
		exec(1, 0, 0, "init", 1),
		exec(100, 1, 10, "shell", 100),
		exec(200, 100, 20, "app", 200, 1),
		exec(201, 200, 30, "worker", 201, 2),
		exec(300, 100, 40, "tool", 300),
		exec(400, 100, 50, "job", 400),
		{Type: events.TypeExit, PID: 400, TID: 400, StartBoot: 400 * 1000, Reaper: 1, ExitStatus: 7 << 8, Time: base + 58e9},
	} {
		t.Apply(e)
	}
	return t
}

type all struct{}

func (all) Selected(*pidmap.Proc) bool  { return true }
func (all) Notes(p *pidmap.Proc) string { return "" }

func render(rows []Row) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%s%s %s", r.Prefix, r.Comm, r.PIDs)
		if r.Exited {
			b.WriteString(" " + r.Exit)
		}
		if r.New {
			b.WriteString(" new")
		}
		if r.Context {
			b.WriteString(" context")
		}
		if r.Hidden > 0 {
			fmt.Fprintf(&b, " +%d", r.Hidden)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestRows(t *testing.T) {
	now := base + 60e9
	names := map[uint32]string{1000: "alice"}
	cases := []struct {
		name string
		st   State
		want string
	}{
		{"everything, the exit under its parent", State{}, `init 1
└─shell 100
  ├─app 200/1
  │ └─worker 201/2
  ├─tool 300
  └─job 400 exit 7
`},
		{"PIDs from level 1", State{Level: 1}, `init (1)
└─shell (100)
  ├─app 1
  │ └─worker 2
  ├─tool (300)
  └─job (400) exit 7
`},
		{"a filter keeps matches and their ancestors", State{Filter: "WORK"}, `init 1 context
└─shell 100 context
  └─app 200/1 context
    └─worker 201/2
`},
		{"a PID at any level", State{Filter: "2"}, `init 1 context
└─shell 100 context
  └─app 200/1 context
    └─worker 201/2
`},
		{"folded", State{Folded: map[events.Key]bool{{PID: 100, Start: 100 * 1000}: true}}, `init 1
└─shell 100 +4
`},
		{"no match", State{Filter: "nothing"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows := Rows(sample(), all{}, &c.st, now, names)
			if got := render(rows); got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			for _, r := range rows {
				if r.User != "alice" || r.Args != "--flag" {
					t.Errorf("row %s: user %q args %q", r.Comm, r.User, r.Args)
				}
			}
		})
	}
	// Seen from second 52, job started 2 s before.
	if got := render(Rows(sample(), all{}, &State{}, base+52e9, nil)); !strings.Contains(got, "└─job 400 exit 7 new\n") {
		t.Errorf("at second 52, job is not new:\n%s", got)
	}
	// Later, the exit is no longer shown and nothing is new.
	if got, want := render(Rows(sample(), all{}, &State{}, base+120e9, nil)), "init 1\n└─shell 100\n  ├─app 200/1\n  │ └─worker 201/2\n  └─tool 300\n"; got != want {
		t.Errorf("a minute later:\n%s\nwant\n%s", got, want)
	}
}

func TestAge(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{0, "0s"}, {59 * time.Second, "59s"}, {3 * time.Minute, "3m"}, {5 * time.Hour, "5h"}, {72 * time.Hour, "3d"}} {
		if got := Age(base, base+int64(c.d)); got != c.want {
			t.Errorf("Age(%v) = %q, want %q", c.d, got, c.want)
		}
	}
	if Age(0, base) != "-" {
		t.Error("an unknown start has an age")
	}
}

// treeSource serves one tree; panicAfter > 0 makes the nth frame panic, as
// a broken renderer would.
type treeSource struct {
	tree       *pidmap.Tree
	frames     atomic.Int32
	panicAfter int32
}

func (s *treeSource) Frame(st *State) Frame {
	if n := s.frames.Add(1); s.panicAfter > 0 && n >= s.panicAfter {
		panic("renderer broke")
	}
	now := base + 60e9
	return Frame{Title: "test", Rows: Rows(s.tree, all{}, st, now, nil), Processes: s.tree.Len(), Now: now}
}

func (s *treeSource) Details(key events.Key) []string {
	return []string{fmt.Sprintf("details of %d", key.PID)}
}

// finiScreen records that the terminal was restored, and lets the test
// read the screen while the app draws (the simulation hands out the cells
// it draws into).
type finiScreen struct {
	tcell.SimulationScreen
	finished atomic.Bool
	mu       sync.Mutex
}

func (s *finiScreen) Show() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.SimulationScreen.Show()
}

func (s *finiScreen) Sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.SimulationScreen.Sync()
}

func (s *finiScreen) Fini() {
	s.finished.Store(true)
	s.SimulationScreen.Fini()
}

// Init is done by newScreen, before the test reads the screen from its
// own goroutine (the simulation's Init takes no lock).
func (s *finiScreen) Init() error { return nil }

func newScreen(t *testing.T) *finiScreen {
	s := &finiScreen{SimulationScreen: tcell.NewSimulationScreen("UTF-8")}
	if err := s.SimulationScreen.Init(); err != nil {
		t.Fatal(err)
	}
	return s
}

// text is the screen's content, one string per line.
func text(s *finiScreen) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	cells, w, h := s.GetContents()
	lines := make([]string, h)
	for y := range h {
		var b strings.Builder
		for x := range w {
			if r := cells[y*w+x].Runes; len(r) > 0 {
				b.WriteString(string(r))
			}
		}
		lines[y] = strings.TrimRight(b.String(), " ")
	}
	return lines
}

// waitScreen polls the simulated screen until ok accepts it.
func waitScreen(t *testing.T, s *finiScreen, what string, ok func([]string) bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for lines := text(s); len(lines) == 0 || !ok(lines); lines = text(s) {
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %s:\n%s", what, strings.Join(text(s), "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func has(lines []string, s string) bool {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func TestAppKeys(t *testing.T) {
	screen := newScreen(t)
	app := New(screen, &treeSource{tree: sample()})
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	waitScreen(t, screen, "the tree", func(l []string) bool { return has(l, "└─shell") && has(l, "worker") })
	// Hostile comm is escaped; the exited job shows its code.
	waitScreen(t, screen, "the exit", func(l []string) bool { return has(l, "job [exit 7]") })

	screen.InjectKey(tcell.KeyRune, '/', 0)
	for _, r := range "tool" {
		screen.InjectKey(tcell.KeyRune, r, 0)
	}
	screen.InjectKey(tcell.KeyEnter, 0, 0)
	waitScreen(t, screen, "the filter", func(l []string) bool { return has(l, "tool") && !has(l, "worker") && has(l, "[filter: tool]") })
	screen.InjectKey(tcell.KeyEscape, 0, 0)
	waitScreen(t, screen, "the filter cleared", func(l []string) bool { return has(l, "worker") })

	// Select shell (the second row) and fold it.
	screen.InjectKey(tcell.KeyDown, 0, 0)
	screen.InjectKey(tcell.KeyRune, ' ', 0)
	waitScreen(t, screen, "shell folded", func(l []string) bool { return has(l, "shell {+4}") && !has(l, "worker") })
	screen.InjectKey(tcell.KeyRune, 'F', 0)
	waitScreen(t, screen, "everything unfolded", func(l []string) bool { return has(l, "worker") })

	screen.InjectKey(tcell.KeyRune, 'l', 0)
	waitScreen(t, screen, "PIDs from level 1", func(l []string) bool { return has(l, "PID@1") && has(l, "(100)") })

	screen.InjectKey(tcell.KeyEnter, 0, 0)
	waitScreen(t, screen, "the details", func(l []string) bool { return has(l, "details of 100") })
	screen.InjectKey(tcell.KeyEscape, 0, 0)
	waitScreen(t, screen, "the tree again", func(l []string) bool { return has(l, "worker") })

	screen.InjectKey(tcell.KeyRune, 'q', 0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !screen.finished.Load() {
		t.Error("the terminal was not restored")
	}
}

// TestAppRestoresTerminalOnPanic: a renderer's panic still restores the
// terminal before the panic goes on.
func TestAppRestoresTerminalOnPanic(t *testing.T) {
	screen := newScreen(t)
	app := New(screen, &treeSource{tree: sample(), panicAfter: 3})
	var recovered any
	func() {
		defer func() { recovered = recover() }()
		app.Run(context.Background())
	}()
	if recovered != "renderer broke" {
		t.Fatalf("recovered %v, want the renderer's panic", recovered)
	}
	if !screen.finished.Load() {
		t.Error("the panic left the terminal unrestored")
	}
}

// TestAppEndsWithContext: SIGTERM cancels the context; the terminal is
// restored.
func TestAppEndsWithContext(t *testing.T) {
	screen := newScreen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(screen, &treeSource{tree: sample()}).Run(ctx) }()
	waitScreen(t, screen, "the tree", func(l []string) bool { return has(l, "worker") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !screen.finished.Load() {
		t.Error("the terminal was not restored")
	}
}

// TestDrawEscapes: what a process controls is drawn escaped, and cut at
// the screen's edge.
func TestDrawEscapes(t *testing.T) {
	screen := newScreen(t)
	defer screen.Fini()
	screen.SetSize(20, 2)
	end := drawText(screen, 0, 0, 20, "a\x1b[2Jb\u202ec", tcell.StyleDefault)
	cut := drawText(screen, 0, 1, 10, "a\x1b[2Jb\u202ec", tcell.StyleDefault)
	screen.Show()
	if got := text(screen); got[0] != `a\x1b[2Jb\u202ec` || got[1] != `a\x1b[2Jb\` {
		t.Errorf("drawn %q", got)
	}
	if end != 16 || cut != 10 {
		t.Errorf("drawing ended at column %d, want the edge", end)
	}
}

// BenchmarkRows builds the rows of 10,000 processes, as each refresh of a
// large machine's screen does (under the live tree's lock).
func BenchmarkRows(b *testing.B) {
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	tree.Apply(exec(1, 0, 0, "init", 1))
	for pid := uint32(2); pid <= 10_000; pid++ {
		parent := uint32(1)
		if pid%10 != 0 {
			parent = pid - pid%10 // ten children under every tenth process
		}
		tree.Apply(exec(pid, parent, 1, "worker", pid))
	}
	st := &State{Folded: map[events.Key]bool{}}
	b.ReportAllocs()
	for b.Loop() {
		if rows := Rows(tree, all{}, st, base+60e9, nil); len(rows) != 10_000 {
			b.Fatalf("%d rows", len(rows))
		}
	}
}

// fakeTimeline has one event a second from base; its frames name the
// position.
type fakeTimeline struct {
	treeSource
	n   int
	pos atomic.Int32
	at  atomic.Int64
}

func (f *fakeTimeline) Positions() int       { return f.n }
func (f *fakeTimeline) Position() int        { return int(f.pos.Load()) }
func (f *fakeTimeline) Start() int64         { return base }
func (f *fakeTimeline) TimeAt(pos int) int64 { return base + int64(pos)*1e9 }
func (f *fakeTimeline) Find(t int64) int     { return max(0, min(f.n, int((t-base)/1e9))) }
func (f *fakeTimeline) Instant() int64       { return f.at.Load() }
func (f *fakeTimeline) Step(pos, n int) int  { return pos + n }
func (f *fakeTimeline) Seek(pos int, at int64) error {
	if pos < 0 || pos > f.n || f.Find(at) != pos {
		return fmt.Errorf("seek to %d at %d of %d", pos, at, f.n)
	}
	f.pos.Store(int32(pos))
	f.at.Store(at)
	return nil
}

// TestTimelineKeys moves the time cursor with every key: steps, jumps, go
// to, and play.
func TestTimelineKeys(t *testing.T) {
	screen := newScreen(t)
	tl := &fakeTimeline{treeSource: treeSource{tree: sample()}, n: 600}
	tl.Seek(100, tl.TimeAt(100))
	done := make(chan error, 1)
	go func() { done <- New(screen, tl).Run(context.Background()) }()
	at := func(pos int) {
		t.Helper()
		waitScreen(t, screen, fmt.Sprintf("event %d", pos), func(l []string) bool {
			return strings.Contains(l[0], fmt.Sprintf("event %d/600", pos))
		})
	}
	at(100)
	for _, c := range []struct {
		key  rune
		want int
	}{{'.', 101}, {',', 100}, {']', 110}, {'[', 100}, {'}', 160}, {'{', 100}} {
		screen.InjectKey(tcell.KeyRune, c.key, 0)
		at(c.want)
	}
	screen.InjectKey(tcell.KeyRight, 0, 0)
	at(101)
	screen.InjectKey(tcell.KeyLeft, 0, 0)
	at(100)

	screen.InjectKey(tcell.KeyRune, 'g', 0)
	for _, r := range "+300s" {
		screen.InjectKey(tcell.KeyRune, r, 0)
	}
	screen.InjectKey(tcell.KeyEnter, 0, 0)
	at(300)
	waitScreen(t, screen, "the cursor's time", func(l []string) bool {
		return strings.Contains(l[0], "2026-11-23T10:08:00Z (+300.000s)")
	})
	// A time outside the recording is refused, and the cursor stays.
	screen.InjectKey(tcell.KeyRune, 'g', 0)
	for _, r := range "+1h" {
		screen.InjectKey(tcell.KeyRune, r, 0)
	}
	screen.InjectKey(tcell.KeyEnter, 0, 0)
	waitScreen(t, screen, "the refusal", func(l []string) bool { return has(l, "is outside the recording") && has(l, "event 300/600") })

	// Played at 64x, a second moves the cursor by about a minute.
	for range 6 {
		screen.InjectKey(tcell.KeyRune, '+', 0)
	}
	screen.InjectKey(tcell.KeyRune, 'p', 0)
	waitScreen(t, screen, "playing", func(l []string) bool { return strings.Contains(l[0], "▶ 6") })
	waitScreen(t, screen, "the cursor moving", func(l []string) bool { return tl.Position() >= 330 })
	screen.InjectKey(tcell.KeyRune, 'p', 0)
	waitScreen(t, screen, "paused", func(l []string) bool { return strings.Contains(l[0], "paused") })
	stopped := tl.Position()
	time.Sleep(300 * time.Millisecond)
	if tl.Position() != stopped {
		t.Errorf("paused, the cursor still moved from %d to %d", stopped, tl.Position())
	}
	screen.InjectKey(tcell.KeyRune, 'q', 0)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRowsShowArgv0WhereItDiffers: a process whose argv[0] is not its
// executable's name (exec -a, or masquerading as a kernel thread) shows
// both; one whose argv[0] made its comm does not repeat it.
func TestRowsShowArgv0WhereItDiffers(t *testing.T) {
	tree := pidmap.NewTree(0)
	masq := exec(10, 0, 0, "sleeperbin", 10)
	masq.SetArgs([]string{"[kworker/0:9]", "60"})
	long := exec(11, 0, 0, "a-very-long-com", 11) // the kernel's cut of the name
	long.SetArgs([]string{"/usr/bin/a-very-long-command-name", "-x"})
	tree.Apply(masq)
	tree.Apply(long)
	rows := Rows(tree, all{}, &State{}, base, nil)
	if len(rows) != 2 || rows[0].Args != "[kworker/0:9] 60" || rows[1].Args != "-x" {
		t.Errorf("rows: %+v", rows)
	}
}

// TestNarrowScreen: at 80×24 the header keeps what changes and alarms
// (the time, the lost count) ahead of the title, and the details wrap
// long values instead of cutting them, scrolled with ↓.
func TestNarrowScreen(t *testing.T) {
	screen := newScreen(t)
	screen.SetSize(80, 24)
	long := strings.Repeat("cap_sys_admin,", 12) + "END"
	app := New(screen, &detailSource{treeSource: treeSource{tree: sample()}, lines: append(make([]string, 30), "  cred: "+long)})
	done := make(chan error, 1)
	go func() { done <- app.Run(context.Background()) }()
	waitScreen(t, screen, "the header", func(l []string) bool {
		return strings.Contains(l[0], "0 lost") && strings.Contains(l[0], "10:04:00Z")
	})
	screen.InjectKey(tcell.KeyEnter, 0, 0)
	for range 40 {
		screen.InjectKey(tcell.KeyDown, 0, 0)
	}
	waitScreen(t, screen, "the end of a long line, wrapped", func(l []string) bool { return has(l, "END") })
	screen.InjectKey(tcell.KeyRune, 'q', 0)
	screen.InjectKey(tcell.KeyEscape, 0, 0)
	screen.InjectKey(tcell.KeyRune, 'q', 0)
	<-done
}

type detailSource struct {
	treeSource
	lines []string
}

func (s *detailSource) Details(events.Key) []string { return s.lines }

// TestRowsOfADeepChain: a chain far deeper than a screen (a recording can
// hold one of 100,000) makes rows of bounded width, which say their depth.
func TestRowsOfADeepChain(t *testing.T) {
	tree := pidmap.NewTree(0)
	const n = 2000
	for i := uint32(1); i <= n; i++ {
		tree.Apply(exec(i, i-1, 0, "p", i))
	}
	rows := Rows(tree, all{}, &State{}, base, nil)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for _, r := range rows {
		if len(r.Prefix) > 4*maxIndent+40 {
			t.Fatalf("row %d's prefix is %d bytes", r.Key.PID, len(r.Prefix))
		}
	}
	if last := rows[n-1].Prefix; !strings.Contains(last, fmt.Sprintf("(depth %d)", n-1)) {
		t.Errorf("the deepest row's prefix ends %q", last[max(0, len(last)-40):])
	}
}

// TestDetails: the details of a process are its proc object's fields, one
// a line, its exit, and its ancestors; of a process gone, a line saying so.
func TestDetails(t *testing.T) {
	tree := sample()
	lines := Details(tree, events.Key{PID: 400, Start: 400 * 1000}, base+60e9)
	text := strings.Join(lines, "\n")
	for _, want := range []string{"job, host PID 400", "exited at 2026-11-23T10:03:58Z: exited with 7", `  comm:                  "job"`, "ancestors, parent first:\n  shell(100)\n  init(1)"} {
		if !strings.Contains(text, want) {
			t.Errorf("details lack %q:\n%s", want, text)
		}
	}
	if got := Details(tree, events.Key{PID: 999}, base); len(got) != 1 || !strings.Contains(got[0], "no longer known") {
		t.Errorf("details of an unknown process: %q", got)
	}
}

// TestFlaggedRows: a process with findings is marked, its reasons are in
// its details, and --flagged shows it with its ancestors only.
func TestFlaggedRows(t *testing.T) {
	tree := pidmap.NewTree(16)
	at := func(e *events.Event, typ events.Type) *events.Event {
		e.Type, e.StartBoot = typ, uint64(e.PID)
		return e
	}
	memfd := at(testenv.HostProc(30, 20, nil), events.TypeExec)
	memfd.ExeMemfd, memfd.ExeUnlinked = true, true
	memfd.FilenameLen = uint16(copy(memfd.Filename[:], "/dev/fd/3"))
	for _, e := range []*events.Event{at(testenv.HostProc(1, 0, nil), events.TypeProc), at(testenv.HostProc(20, 1, nil), events.TypeFork),
		at(testenv.HostProc(21, 1, nil), events.TypeFork), at(testenv.HostProc(30, 20, nil), events.TypeFork), memfd} {
		tree.Apply(e)
	}
	v := &view.View{Tree: tree, NS: tree.Root(), Flagged: true}
	rows := Rows(tree, ViewSelection{View: v}, &State{}, testenv.T0, nil)
	var shown []string
	for _, r := range rows {
		shown = append(shown, fmt.Sprintf("%d:%v:%s", r.Key.PID, r.Flagged, r.Notes))
	}
	if got := strings.Join(shown, " "); got != "1:false: 20:false: 30:true:[! fileless]" {
		t.Errorf("--flagged rows: %s", got)
	}
	details := strings.Join(Details(tree, events.Key{PID: 30, Start: 30}, testenv.T0), "\n")
	if !strings.Contains(details, "fileless since") || !strings.Contains(details, "executed a memfd") {
		t.Errorf("details:\n%s", details)
	}
}
