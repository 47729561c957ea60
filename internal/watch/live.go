package watch

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/users"
	"github.com/nspidtrace/nspidtrace/internal/view"
	"github.com/rs/zerolog"
)

// Live is the live tree: a follower of the kernel's events, on its
// own goroutine, and the screen's frames, taken under the same lock.
type Live struct {
	mu       sync.Mutex
	follower *pidmap.Follower
	tracer   *loader.Tracer
	spec     query.Spec
	ref      uint32 // --pidns's namespace
	own      uint32 // the caller's pid namespace
	root     *pidmap.Proc
	names    users.Names
	latest   func() string // the latest diagnostic, for the footer

	cancel context.CancelFunc
	done   chan error
}

// OpenLive attaches the tracer, builds the tree and follows it, as spec
// selects it (and pid's subtree when not 0). The selection is checked
// against the tree before the screen opens, so a container or PID that
// does not exist is a plain error. latest gives the last diagnostic logged.
func OpenLive(ctx context.Context, spec query.Spec, pid uint32, zlog zerolog.Logger, latest func() string) (*Live, error) {
	ref, err := query.ResolvePidNS(spec.PidNS)
	if err != nil {
		return nil, err
	}
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return nil, fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	dec, err := source.Decoder(zlog)
	if err != nil {
		return nil, err
	}
	tracer, err := loader.Open(loader.Options{Logger: zlog})
	if err != nil {
		return nil, err
	}
	w := &Live{tracer: tracer, spec: spec, ref: ref, own: own, latest: latest, done: make(chan error, 1)}
	w.names, _ = users.Read("/")
	w.follower = pidmap.NewFollower(lockedSource{tracer, &w.mu}, pidmap.NewTree(pidmap.DefaultExitedKept), dec)
	if err := w.follower.Start(); err != nil {
		tracer.Close()
		return nil, err
	}
	q, err := w.query()
	if err == nil && pid != 0 {
		w.root, err = q.Find(pid)
	}
	if err != nil {
		tracer.Close()
		return nil, err
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		// A panic here would end the process with the terminal raw:
		// it is handed to the screen's goroutine as an error instead.
		defer func() {
			if r := recover(); r != nil {
				w.done <- fmt.Errorf("following the kernel's events: panic: %v\n%s", r, debug.Stack())
			}
		}()
		w.done <- w.follower.Run(ctx)
	}()
	return w, nil
}

// query resolves the selection against the tree as it is now: a container
// restarted under its name is followed.
func (w *Live) query() (*view.View, error) {
	tree := w.follower.Tree
	q := &view.View{Tree: tree, AsOf: tree.Time(), Own: tree.Namespace(w.own), Flagged: w.spec.Flagged}
	return q, q.Select(w.spec.Container, w.spec.Pod, w.ref)
}

func (w *Live) Frame(st *State) Frame {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now().UnixNano()
	tree := w.follower.Tree
	q, err := w.query()
	var f Frame
	if err != nil {
		f = Frame{Processes: tree.Len(), Namespaces: tree.Namespaces(), Now: now, Title: termsafe.String(w.spec.Container + w.spec.Pod + w.spec.PidNS)}
		f.Note = termsafe.String(err.Error()) + ": waiting for it"
	} else {
		f = FrameOf(tree, ViewSelection{View: q, Root: w.root}, st, now, w.names)
	}
	f.Events, f.Lost = w.follower.Events, w.follower.Lost
	if w.root != nil && w.root.Exited {
		f.Note = fmt.Sprintf("process %d exited", w.root.PID)
	}
	if last := w.latest(); last != "" && f.Note == "" {
		f.Note = last
	}
	select {
	case err := <-w.done:
		// The follower stopped: say why, for as long as the screen is up.
		w.done <- err
		if err != nil {
			f.Note = "stopped following the kernel: " + termsafe.String(err.Error())
		}
	default:
	}
	return f
}

func (w *Live) Details(key events.Key) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Details(w.follower.Tree, key, time.Now().UnixNano())
}

// Stop ends the follower and closes the tracer.
func (w *Live) Stop() {
	w.cancel()
	<-w.done
	w.tracer.Close()
}

// lockedSource hands the kernel's records to the tree under a lock, so
// that the screen reads the tree between two records, never during one.
type lockedSource struct {
	*loader.Tracer
	mu *sync.Mutex
}

func (s lockedSource) locked(f func(raw []byte) error) func(raw []byte) error {
	return func(raw []byte) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return f(raw)
	}
}

func (s lockedSource) Snapshot(handle func(raw []byte) error) error {
	return s.Tracer.Snapshot(s.locked(handle))
}

func (s lockedSource) Run(ctx context.Context, handle func(raw []byte) error, idle func() error) error {
	return s.Tracer.Run(ctx, s.locked(handle), func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return idle()
	})
}
