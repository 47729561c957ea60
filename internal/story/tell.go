package story

import (
	"errors"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/source"
)

// Request is what story was asked about.
type Request struct {
	// Spec is where to look: --from and --at find PID; --container asks
	// for a container's story; --pidns reads PID.
	Spec query.Spec
	PID  uint32     // a process by its PID at Spec.At (0: none)
	Key  events.Key // or by its key
	// Descendants adds the stories of the processes it forks.
	Descendants bool
}

// Told is what story tells: the stories, and for a container its
// generations and entries.
type Told struct {
	Stories    []*Story
	Containers *Containers // nil unless a container was asked about
	Live       bool        // told from a snapshot: what one shows, not a life
}

// Tell replays the recording (or takes a snapshot of the live system) and
// gathers what r asks for.
func Tell(r Request, log zerolog.Logger) (*Told, error) {
	live := len(r.Spec.From) == 0
	var now *pidmap.Tree // live: the snapshot that found PID, told again
	if r.Key == (events.Key{}) && r.PID != 0 {
		v, err := query.Open(r.Spec, log)
		if err != nil {
			return nil, err
		}
		p, err := v.Find(r.PID)
		if err != nil {
			return nil, err
		}
		r.Key = events.Key{PID: p.PID, Start: p.Start}
		if live {
			now = v.Tree
		}
	}
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	collect := NewCollector(tree)
	collect.Descendants = r.Descendants
	if r.Key != (events.Key{}) {
		collect.follow(r.Key, events.Key{}, 0)
	}
	var ctrs *Containers
	if (r.Spec.Container != "" || r.Spec.Pod != "") && r.PID == 0 && r.Key == (events.Key{}) {
		var err error
		if ctrs, err = Asked(r.Spec.Container, r.Spec.Pod, tree); err != nil {
			return nil, err
		}
	}
	each := func(ev *events.Event) {
		if ctrs != nil {
			n := len(ctrs.Entries)
			ctrs.Event(ev)
			for _, e := range ctrs.Entries[n:] {
				collect.follow(e.Key, events.Key{}, 0)
			}
		}
		collect.Event(ev)
	}
	told := &Told{Containers: ctrs, Live: live}
	if live {
		if err := snapshot(now, tree, each, log); err != nil {
			return nil, err
		}
	} else {
		spec := r.Spec
		spec.At = "" // a life is told to the recording's end
		if _, err := source.Replay(spec.From, spec.At, log, tree, func(ev *events.Event, _ []byte) error {
			each(ev)
			return nil
		}); err != nil {
			return nil, err
		}
	}
	told.Stories = collect.Stories()
	if ctrs != nil && len(ctrs.Generations) == 0 {
		where := "in the recording"
		if live {
			where = "running"
		}
		return nil, fault.NotFound{Err: container.NotSeen(r.Spec.Container, r.Spec.Pod, where)}
	}
	if r.Key != (events.Key{}) && len(told.Stories) > 0 && len(told.Stories[0].Facts) == 0 {
		return nil, fault.NotFound{Err: errors.New("process " + r.Key.String() + " is in no line of the recording")}
	}
	return told, nil
}

// snapshot feeds each a proc event of every process of live (nil: a new
// snapshot of the live system), parents first, applied to tree: a story
// of what a snapshot shows.
func snapshot(live, tree *pidmap.Tree, each func(*events.Event), log zerolog.Logger) error {
	if live == nil {
		var err error
		if live, _, err = source.Live(log, true); err != nil {
			return err
		}
	}
	var ev events.Event
	live.Walk(func(p *pidmap.Proc, _ int) {
		p.Fill(&ev, live.Time())
		tree.Apply(&ev)
		each(&ev)
	})
	return nil
}
