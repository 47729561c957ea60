package recording

// The time cursor of watch --from: a timeline of recordings indexed once,
// and a tree that stands after any number of its events.

import (
	"fmt"
	"io"
	"runtime/debug"
	"slices"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// Cursor is a timeline of recordings with a time cursor. The tree is
// replayed on its own goroutine, which parks before the event the cursor
// stands at: moving forward applies only the events in between; moving
// back replays from the start. The tree is read only while the replay is
// parked (between calls to Seek).
type Cursor struct {
	files []File
	times []int64 // the instant after each event: a running maximum
	start int64
	// marks are the positions after the selection's events, ascending;
	// nil: every event is the selection's.
	marks []int

	pos     int
	at      int64 // the instant the cursor stands at
	tree    *pidmap.Tree
	running bool
	target  chan int
	parked  chan parked
}

// parked is where a replay stands; done when it reached the end (or err).
type parked struct {
	pos  int
	done bool
	err  error
}

// NewCursor reads files once, to index their events; selected, when not
// nil, says which events Step goes to (it sees each event once applied to
// the index's tree). The cursor stands nowhere until the first Seek. The
// caller closes the files (Close).
func NewCursor(files []File, selected func(ev *events.Event, tree *pidmap.Tree) bool) (*Cursor, *pidmap.Replay, error) {
	c := &Cursor{files: files}
	var last int64
	index := pidmap.At{Stop: func(ev *events.Event) bool {
		last = max(last, ev.Time)
		c.times = append(c.times, last)
		return false
	}}
	if selected != nil {
		c.marks = []int{} // none of the selection's: steps go to the ends
	}
	rep, err := c.replay(index, pidmap.NewTree(pidmap.DefaultExitedKept), func(ev *events.Event, tree *pidmap.Tree) {
		// A snapshot's proc lines are no steps: the start is position 0.
		if selected != nil && ev.Type != events.TypeProc && selected(ev, tree) {
			c.marks = append(c.marks, len(c.times))
		}
	})
	if err != nil {
		return nil, rep, err
	}
	c.start = rep.Start
	return c, rep, nil
}

// replay reads the files from their start into tree, calling each (when
// not nil) with every event, once applied.
func (c *Cursor) replay(at pidmap.At, tree *pidmap.Tree, each func(ev *events.Event, tree *pidmap.Tree)) (*pidmap.Replay, error) {
	for _, f := range c.files {
		if _, err := f.File.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
	}
	var apply func(ev *events.Event, _ []byte) error
	if each != nil {
		apply = func(ev *events.Event, _ []byte) error { each(ev, tree); return nil }
	}
	return pidmap.ReplayFiles(Inputs(c.files), at, tree, apply)
}

// Step is the position n of the selection's events away from pos (n < 0:
// back): the start before the first, the end after the last.
func (c *Cursor) Step(pos, n int) int {
	if c.marks == nil {
		return pos + n
	}
	i, _ := slices.BinarySearch(c.marks, pos) // the first mark at pos or after
	switch {
	case n > 0 && i < len(c.marks) && c.marks[i] == pos:
		i += n
	case n > 0:
		i += n - 1
	default:
		i += n
	}
	if i < 0 {
		return 0
	}
	if i >= len(c.marks) {
		return len(c.times)
	}
	return c.marks[i]
}

// Positions is the number of events: the end's position.
func (c *Cursor) Positions() int { return len(c.times) }

// Position is where the cursor stands: after that many events.
func (c *Cursor) Position() int { return c.pos }

// Start is the timeline's start (Unix ns).
func (c *Cursor) Start() int64 { return c.start }

// Tree is the tree as of the cursor.
func (c *Cursor) Tree() *pidmap.Tree { return c.tree }

// TimeAt is the time of the event before pos (Unix ns): the earliest
// instant at which the tree stands as at pos.
func (c *Cursor) TimeAt(pos int) int64 {
	if pos <= 0 || len(c.times) == 0 {
		return c.start
	}
	return c.times[min(pos, len(c.times))-1]
}

// Find is the number of events before the first later than t: where a
// replay with --at t stops.
func (c *Cursor) Find(t int64) int {
	lo, hi := 0, len(c.times)
	for lo < hi {
		mid := (lo + hi) / 2
		if c.times[mid] > t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Instant is the instant the cursor stands at.
func (c *Cursor) Instant() int64 { return c.at }

// Seek moves the cursor to pos, standing at instant at: forward from the
// parked replay, or back by a new replay from the start.
func (c *Cursor) Seek(pos int, at int64) error {
	c.at = at
	if c.running && pos < c.pos {
		c.target <- -1 // abandon it
		<-c.parked
		c.running = false
	}
	if !c.running {
		if pos == c.pos && c.tree != nil {
			return nil
		}
		c.tree, c.pos, c.running = pidmap.NewTree(pidmap.DefaultExitedKept), 0, true
		c.target, c.parked = make(chan int), make(chan parked)
		go c.park(pos)
	} else {
		c.target <- pos
	}
	p := <-c.parked
	c.pos = p.pos
	if p.done {
		c.running = false
	}
	return p.err
}

// park replays up to the target position and waits there for the next
// one; a target before where it stands ends it.
func (c *Cursor) park(target int) {
	n := 0
	defer func() {
		if r := recover(); r != nil {
			c.parked <- parked{pos: n, done: true, err: fmt.Errorf("replay: panic: %v\n%s", r, debug.Stack())}
		}
	}()
	at := pidmap.At{Stop: func(*events.Event) bool {
		for n == target {
			c.parked <- parked{pos: n}
			if target = <-c.target; target < n {
				return true
			}
		}
		n++
		return false
	}}
	_, err := c.replay(at, c.tree, nil)
	c.parked <- parked{pos: n, done: true, err: err}
}

// Close ends a parked replay and closes the files.
func (c *Cursor) Close() {
	if c.running {
		c.target <- -1
		<-c.parked
		c.running = false
	}
	for _, f := range c.files {
		f.File.Close()
	}
}
