package watch

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// Source is what the screen shows: the live tree, or a recording's.
type Source interface {
	// Frame builds what to draw for st, with the tree held still meanwhile.
	Frame(st *State) Frame
	// Details describes one process, every field and its ancestors, as
	// lines of raw text (drawn through termsafe).
	Details(key events.Key) []string
}

// Timeline is a Source over a recording: a cursor that stands after any
// number of its events. Position 0 is the start (its snapshot applied),
// Positions() the end.
type Timeline interface {
	Source
	Positions() int
	Position() int
	// TimeAt is the time of the event before pos (Unix ns): the earliest
	// instant at which the tree stands as at pos.
	TimeAt(pos int) int64
	// Find is the position of instant t (Unix ns): after every event up to
	// t, as `--at t` replays it.
	Find(t int64) int
	// Seek moves the cursor to pos, standing at instant at (from TimeAt(pos)
	// up to the next event's time).
	Seek(pos int, at int64) error
	// Instant is the instant the cursor stands at.
	Instant() int64
	// Start is the recording's start (Unix ns): "+90s" counts from it.
	Start() int64
	// Step is the position n events of the selection away from pos
	// (n < 0: back): ←/→ skip what is not watched.
	Step(pos, n int) int
}

// Frame is one screen's worth of the source.
type Frame struct {
	Title      string // what is watched: "container web", "pid:[4026532]"
	Rows       []Row
	Processes  int    // live processes in the tree
	Namespaces int    // pid namespaces in the tree
	Events     uint64 // events applied since the start
	Lost       uint64 // events the kernel dropped
	Now        int64  // the instant the tree stands at (Unix ns)
	Note       string // something the viewer should know: "container web stopped"
}

// refresh is how often a live screen is redrawn, and a played one advanced.
const (
	liveRefresh = 250 * time.Millisecond
	playRefresh = 100 * time.Millisecond
	rateWindow  = time.Second
)

type mode int

const (
	modeTree mode = iota
	modeFilter
	modeGoto
	modeDetails
)

// App is the full-screen view.
type App struct {
	screen tcell.Screen
	src    Source
	tl     Timeline // nil when live

	st       State
	frame    Frame
	maxLevel int // the deepest pid-namespace level among the rows
	mode     mode
	input    []rune // the prompt's text

	cursor  int        // the selected row
	top     int        // the first row on screen
	selKey  events.Key // the selected process, kept across frames
	paused  bool       // live: the frame is not refreshed
	details []string
	detTop  int
	status  string // a message in the footer until the next key

	firstFrame bool
	rate       float64 // events per second (live)
	lastEvents uint64
	lastRate   time.Time

	playing   bool
	speed     float64
	playClock float64 // the played instant (Unix ns)
	lastPlay  time.Time
}

// New returns the view of src on screen (not yet initialised). A src that
// is a Timeline gets the time cursor's keys.
func New(screen tcell.Screen, src Source) *App {
	a := &App{screen: screen, src: src, speed: 1, st: State{Folded: map[events.Key]bool{}}, firstFrame: true}
	a.tl, _ = src.(Timeline)
	return a
}

// Run draws until the viewer quits or ctx is done. The terminal is
// restored on every way out, a panic included: deferred calls run before a
// panic is printed. Only tcell's input reader runs on another goroutine,
// and it calls none of this package's code; a Source's own goroutines must
// hand their panics over (cmd/nspidtrace's do).
func (a *App) Run(ctx context.Context) error {
	if err := a.screen.Init(); err != nil {
		return fmt.Errorf("open the terminal: %w", err)
	}
	defer a.screen.Fini()
	a.screen.HideCursor()
	input := make(chan tcell.Event, 16)
	quit := make(chan struct{})
	defer close(quit)
	go a.screen.ChannelEvents(input, quit)

	interval := liveRefresh
	if a.tl != nil {
		interval = playRefresh
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	a.refresh()
	for {
		a.draw()
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-input:
			if !ok {
				return nil
			}
			done, err := a.handle(ev)
			if done || err != nil {
				return err
			}
		case <-tick.C:
			if err := a.tick(); err != nil {
				return err
			}
		}
	}
}

// tick refreshes a live screen, or advances a played recording.
func (a *App) tick() error {
	if a.tl == nil {
		if !a.paused {
			a.refresh()
		}
		return nil
	}
	if !a.playing {
		return nil
	}
	now := time.Now()
	a.playClock += float64(now.Sub(a.lastPlay)) * a.speed
	a.lastPlay = now
	end := a.tl.TimeAt(a.tl.Positions())
	t := int64(math.Min(a.playClock, float64(end)))
	if t >= end {
		a.playing = false
	}
	return a.seekTime(t)
}

// refresh takes a new frame from the source and keeps the selection on
// the same process.
func (a *App) refresh() {
	a.frame = a.src.Frame(&a.st)
	a.maxLevel = 0
	for _, r := range a.frame.Rows {
		a.maxLevel = max(a.maxLevel, r.Levels-1)
	}
	if a.firstFrame {
		// Kernel threads are noise in an incident: folded, as htop hides them.
		a.firstFrame = false
		for _, r := range a.frame.Rows {
			if r.Prefix == "" && r.Comm == "kthreadd" {
				a.st.Folded[r.Key] = true
				a.frame = a.src.Frame(&a.st)
				break
			}
		}
	}
	if now := time.Now(); a.tl == nil && now.Sub(a.lastRate) >= rateWindow {
		// Over a second or more: a rate per refresh would flicker.
		if !a.lastRate.IsZero() {
			a.rate = float64(a.frame.Events-a.lastEvents) / now.Sub(a.lastRate).Seconds()
		}
		a.lastEvents, a.lastRate = a.frame.Events, now
	}
	if a.st.Level > a.maxLevel {
		a.st.Level = 0
	}
	for i, r := range a.frame.Rows {
		if r.Key == a.selKey {
			a.cursor = i
			return
		}
	}
	a.select_(a.cursor)
}

// select_ moves the selection to row i (clamped).
func (a *App) select_(i int) {
	a.cursor = max(0, min(i, len(a.frame.Rows)-1))
	if a.cursor < len(a.frame.Rows) {
		a.selKey = a.frame.Rows[a.cursor].Key
	}
}

// seek moves the time cursor to pos, at its event's time, and redraws.
func (a *App) seek(pos int) error {
	pos = max(0, min(pos, a.tl.Positions()))
	return a.seekTo(pos, a.tl.TimeAt(pos))
}

// seekTime moves the time cursor to instant t (within the recording).
func (a *App) seekTime(t int64) error {
	t = max(a.tl.Start(), min(t, a.tl.TimeAt(a.tl.Positions())))
	return a.seekTo(a.tl.Find(t), t)
}

func (a *App) seekTo(pos int, at int64) error {
	if err := a.tl.Seek(pos, at); err != nil {
		return err
	}
	a.refresh()
	return nil
}

// handle acts on one terminal event; done says the viewer quit.
func (a *App) handle(ev tcell.Event) (done bool, err error) {
	switch ev := ev.(type) {
	case *tcell.EventResize:
		a.screen.Sync()
	case *tcell.EventKey:
		if ev.Key() == tcell.KeyCtrlC {
			return true, nil
		}
		a.status = ""
		switch a.mode {
		case modeFilter, modeGoto:
			return false, a.prompt(ev)
		case modeDetails:
			a.detailsKey(ev)
			return false, nil
		}
		return a.treeKey(ev)
	}
	return false, nil
}

// treeKey handles a key on the tree.
func (a *App) treeKey(ev *tcell.EventKey) (done bool, err error) {
	rowsOnScreen := a.rowsOnScreen()
	switch ev.Key() {
	case tcell.KeyUp:
		a.select_(a.cursor - 1)
	case tcell.KeyDown:
		a.select_(a.cursor + 1)
	case tcell.KeyPgUp:
		a.select_(a.cursor - rowsOnScreen)
	case tcell.KeyPgDn:
		a.select_(a.cursor + rowsOnScreen)
	case tcell.KeyHome:
		a.select_(0)
	case tcell.KeyEnd:
		a.select_(len(a.frame.Rows) - 1)
	case tcell.KeyEnter:
		a.openDetails()
	case tcell.KeyEscape:
		a.st.Filter = ""
		a.refresh()
	case tcell.KeyRight:
		return false, a.step(+1)
	case tcell.KeyLeft:
		return false, a.step(-1)
	case tcell.KeyRune:
		return a.runeKey(ev.Rune())
	}
	return false, nil
}

func (a *App) runeKey(r rune) (done bool, err error) {
	switch r {
	case 'q':
		return true, nil
	case 'k':
		a.select_(a.cursor - 1)
	case 'j':
		a.select_(a.cursor + 1)
	case 'p':
		a.togglePause()
	case '/':
		a.mode, a.input = modeFilter, []rune(a.st.Filter)
	case ' ':
		if a.cursor < len(a.frame.Rows) {
			k := a.frame.Rows[a.cursor].Key
			a.st.Folded[k] = !a.st.Folded[k]
			a.refresh()
		}
	case 'F':
		clear(a.st.Folded)
		a.refresh()
	case 'l':
		a.st.Level = (a.st.Level + 1) % (a.maxLevel + 1)
		a.refresh()
	case 'L':
		a.st.Level = (a.st.Level + a.maxLevel) % (a.maxLevel + 1)
		a.refresh()
	case 'd':
		a.openDetails()
	case '?':
		a.details, a.detTop, a.mode = a.help(), 0, modeDetails
	}
	if a.tl == nil {
		return false, nil
	}
	// The time cursor's keys.
	const jump, bigJump = 10 * time.Second, time.Minute
	switch r {
	case '.':
		return false, a.step(+1)
	case ',':
		return false, a.step(-1)
	case ']':
		return false, a.jump(jump)
	case '[':
		return false, a.jump(-jump)
	case '}':
		return false, a.jump(bigJump)
	case '{':
		return false, a.jump(-bigJump)
	case 'g':
		a.mode, a.input = modeGoto, nil
	case '+':
		a.speed = min(a.speed*2, 1024)
	case '-':
		a.speed = max(a.speed/2, 1.0/16)
	}
	return false, nil
}

func (a *App) togglePause() {
	if a.tl == nil {
		a.paused = !a.paused
		if !a.paused {
			a.refresh()
		}
		return
	}
	a.playing = !a.playing
	if a.playing && a.tl.Position() >= a.tl.Positions() {
		a.playing = false
		a.status = "at the end of the recording"
	}
	a.playClock, a.lastPlay = float64(a.tl.Instant()), time.Now()
}

// step moves the time cursor by n events of the selection.
func (a *App) step(n int) error {
	if a.tl == nil {
		return nil
	}
	a.playing = false
	return a.seek(a.tl.Step(a.tl.Position(), n))
}

// jump moves the time cursor by d of recorded time.
func (a *App) jump(d time.Duration) error {
	a.playing = false
	return a.seekTime(a.tl.Instant() + int64(d))
}

// prompt edits the filter or the time to go to.
func (a *App) prompt(ev *tcell.EventKey) error {
	switch ev.Key() {
	case tcell.KeyEscape:
		if a.mode == modeFilter {
			a.st.Filter = ""
			a.refresh()
		}
		a.mode = modeTree
		return nil
	case tcell.KeyEnter:
		m := a.mode
		a.mode = modeTree
		if m == modeGoto {
			return a.goTo(string(a.input))
		}
		return nil
	case tcell.KeyBackspace, tcell.KeyBackspace2:
		if len(a.input) > 0 {
			a.input = a.input[:len(a.input)-1]
		}
	case tcell.KeyRune:
		if len(a.input) < 64 {
			a.input = append(a.input, ev.Rune())
		}
	default:
		return nil
	}
	if a.mode == modeFilter {
		a.st.Filter = string(a.input)
		a.refresh()
	}
	return nil
}

// goTo moves the time cursor to an instant typed as --at takes it.
func (a *App) goTo(s string) error {
	at, err := pidmap.ParseAt(s)
	if err != nil || s == "" {
		a.status = "go to: want RFC 3339 (2026-11-23T10:03:00Z) or +90s from the start"
		return nil
	}
	t := at.Time
	if at.Relative {
		t = a.tl.Start() + int64(at.Offset)
	}
	if t < a.tl.Start() || t > a.tl.TimeAt(a.tl.Positions()) {
		a.status = "go to: " + pidmap.FormatTime(t) + " is outside the recording"
		return nil
	}
	a.playing = false
	return a.seekTime(t)
}

func (a *App) openDetails() {
	if a.cursor >= len(a.frame.Rows) {
		return
	}
	a.details, a.detTop, a.mode = a.src.Details(a.frame.Rows[a.cursor].Key), 0, modeDetails
}

// detailsKey scrolls or closes the details.
func (a *App) detailsKey(ev *tcell.EventKey) {
	switch {
	case ev.Key() == tcell.KeyUp || ev.Rune() == 'k':
		a.detTop = max(a.detTop-1, 0)
	case ev.Key() == tcell.KeyDown || ev.Rune() == 'j':
		a.detTop = min(a.detTop+1, max(len(a.detailLines())-1, 0))
	case ev.Key() == tcell.KeyPgUp:
		a.detTop = max(a.detTop-a.rowsOnScreen(), 0)
	case ev.Key() == tcell.KeyPgDn:
		a.detTop = min(a.detTop+a.rowsOnScreen(), max(len(a.detailLines())-1, 0))
	case ev.Key() == tcell.KeyEscape, ev.Key() == tcell.KeyEnter, ev.Rune() == 'q', ev.Rune() == 'd', ev.Rune() == '?':
		a.mode = modeTree
	}
}

// help is the keys, as the details screen shows them.
func (a *App) help() []string {
	lines := []string{
		"Keys (Esc closes this)",
		"",
		"  q, Ctrl-C        quit",
		"  ↑ ↓ j k PgUp PgDn Home End   select a process",
		"  Enter, d         the selected process: every field, its ancestors",
		"  space            fold or unfold the selected process's subtree",
		"  F                unfold everything",
		"  /                filter by comm or PID (at any level); Esc clears it",
		"  l, L             show PIDs from the next / previous pid-namespace level",
	}
	if a.tl == nil {
		return append(lines, "  p                pause the screen (the tree is still followed)")
	}
	return append(lines,
		"  p                play / pause the recording",
		"  + -              play faster / slower",
		"  → . / ← ,        the next / previous event",
		"  ] [              10 s later / earlier",
		"  } {              1 min later / earlier",
		"  g                go to a time: 2026-11-23T10:03:00Z, or +90s from the start",
	)
}

// rowsOnScreen is how many rows fit between the header and the footer.
func (a *App) rowsOnScreen() int {
	_, h := a.screen.Size()
	return max(h-3, 1)
}
