package watch

import (
	"fmt"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/recording"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
	"github.com/rs/zerolog"
)

// Replay is a recording with a time cursor (recording.Cursor), seen
// as --pidns, --container and <pid> select at the cursor's instant.
type Replay struct {
	*recording.Cursor
	spec query.Spec
	pid  uint32
}

// OpenReplay reads spec's recording once to index its events, then places
// the cursor at spec.At (default: the end).
func OpenReplay(spec query.Spec, pid uint32, log zerolog.Logger) (*Replay, error) {
	if spec.PidNS != "" && !query.IsPID(spec.PidNS) {
		if _, err := query.ResolvePidNS(spec.PidNS); err != nil {
			return nil, err
		}
	}
	at, files, err := source.OpenTimeline(spec.From, spec.At)
	if err != nil {
		return nil, err
	}
	cursor, rep, err := recording.NewCursor(files, stepMarks(spec))
	if err != nil {
		for _, f := range files {
			f.File.Close()
		}
		return nil, source.ReplayError(err, spec.From, len(files))
	}
	w := &Replay{Cursor: cursor, spec: spec, pid: pid}
	source.LogReplay(log, rep)
	pos, t := w.Positions(), rep.End
	if spec.At != "" {
		if t, err = rep.Instant(at); err != nil {
			w.Close()
			return nil, fault.NotFound{Err: fmt.Errorf("--at %w", err)}
		}
		pos = w.Find(t)
	}
	if err := w.Seek(pos, t); err != nil {
		w.Close()
		return nil, err
	}
	// The view must exist at the instant the cursor starts at.
	if _, err := w.selection(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// stepMarks says which events ←/→ step through: those of --container's
// container or --pod's pod (as trace --from keeps them) or in --pidns's
// namespace given as an inode; nil where every event is a step (no
// selection, or one known only at the cursor's instant: --pidns PID).
func stepMarks(spec query.Spec) func(ev *events.Event, tree *pidmap.Tree) bool {
	switch {
	case spec.Container != "" || spec.Pod != "":
		follow, err := feed.ReplayFilter(spec, zerolog.Nop())
		if err != nil {
			return nil // the view refuses it
		}
		return follow.Keep
	case spec.PidNS != "" && !query.IsPID(spec.PidNS):
		ref, err := query.ResolvePidNS(spec.PidNS)
		if err != nil || ref == 0 {
			return nil
		}
		return func(ev *events.Event, _ *pidmap.Tree) bool { return ev.Level(ref) >= 0 }
	}
	return nil
}

// selection resolves the view at the cursor's instant.
func (w *Replay) selection() (ViewSelection, error) {
	q := &view.View{Tree: w.Tree(), AsOf: w.Instant(), FromFile: true, Flagged: w.spec.Flagged}
	ref := uint32(0)
	var err error
	if query.IsPID(w.spec.PidNS) {
		ref, err = q.RefInRecording(w.spec.PidNS)
	} else if ref, err = query.ResolvePidNS(w.spec.PidNS); err != nil {
		return ViewSelection{}, err
	}
	if err == nil {
		err = q.Select(w.spec.Container, w.spec.Pod, ref)
	}
	if err != nil {
		return ViewSelection{}, err
	}
	sel := ViewSelection{View: q}
	if w.pid != 0 {
		sel.Root, err = q.Find(w.pid)
	}
	return sel, err
}

func (w *Replay) Frame(st *State) Frame {
	now, tree := w.Instant(), w.Tree()
	sel, err := w.selection()
	if err != nil {
		return Frame{Processes: tree.Len(), Namespaces: tree.Namespaces(), Now: now,
			Title: termsafe.String(strings.Join(w.spec.From, ", ")), Note: termsafe.String(err.Error()) + " (at this instant)"}
	}
	// Names of this machine's users would mislead about another's: a
	// recording's rows show UIDs.
	f := FrameOf(tree, sel, st, now, nil)
	f.Events = uint64(w.Position())
	return f
}

func (w *Replay) Details(key events.Key) []string {
	return Details(w.Tree(), key, w.Instant())
}
