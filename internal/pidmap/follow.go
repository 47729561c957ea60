package pidmap

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// Source is where a live tree comes from: internal/loader's Tracer, whose
// programs are attached before Snapshot runs, so no process born meanwhile
// is missed.
type Source interface {
	// Snapshot hands over one proc record per live process.
	Snapshot(handle func(raw []byte) error) error
	// Run hands over event records until ctx is done, and calls idle
	// whenever it has drained what the kernel produced.
	Run(ctx context.Context, handle func(raw []byte) error, idle func() error) error
	// Lost counts the records the kernel dropped.
	Lost() (uint64, error)
}

// Follower keeps a Tree true from a Source: a snapshot first, then every
// event in order, and a new snapshot whenever the kernel lost events.
type Follower struct {
	Tree    *Tree
	Decoder events.Decoder
	// OnEvent, when set, sees each event once the tree has applied it, and
	// the proc records of the first snapshot; a lost event is passed on too.
	OnEvent func(ev *events.Event) error
	// OnIdle, when set, runs whenever the source is drained.
	OnIdle func() error

	// Counts since Start: records decoded, records that would not decode
	// (a newer kernel side), and records the kernel dropped.
	Events, Undecodable, Lost uint64

	src Source
	ev  events.Event
	// nsCred: credentials a setns or unshare left processes with, until
	// their exec (see credBefore).
	nsCred  map[events.Key]*events.Cred
	resyncs int
	initial bool
	synced  atomic.Bool
}

// NewFollower returns a follower of src into tree.
func NewFollower(src Source, tree *Tree, dec events.Decoder) *Follower {
	return &Follower{Tree: tree, Decoder: dec, src: src, nsCred: map[events.Key]*events.Cred{}}
}

// Start builds the tree from a snapshot. Events the kernel produced since
// the programs were attached wait in the source and are applied by Run.
func (f *Follower) Start() error {
	f.initial = true
	defer func() { f.initial = false }()
	return f.snapshot()
}

// snapshot applies a snapshot; processes the tree has but the snapshot
// lacks exited while events were lost.
func (f *Follower) snapshot() error {
	f.synced.Store(false)
	now := f.Decoder.BootToUnix
	gen := f.Tree.beginResync()
	err := f.src.Snapshot(func(raw []byte) error {
		if err := f.Decoder.Decode(raw, &f.ev); err != nil {
			return fmt.Errorf("decode a snapshot record: %w", err)
		}
		now = f.ev.Time
		f.Tree.Apply(&f.ev)
		if f.initial && f.OnEvent != nil {
			return f.OnEvent(&f.ev)
		}
		return nil
	})
	if err != nil {
		return err
	}
	f.Tree.endResync(gen, now)
	f.synced.Store(true)
	return nil
}

// Synced reports whether the tree is up to date with the kernel: the first
// snapshot is taken and no resync is under way. Safe from any goroutine.
func (f *Follower) Synced() bool { return f.synced.Load() }

// Run applies events until ctx is done.
func (f *Follower) Run(ctx context.Context) error {
	return f.src.Run(ctx, f.handle, f.idle)
}

// Resyncs reports how many times the tree was rebuilt after a loss.
func (f *Follower) Resyncs() int { return f.resyncs }

func (f *Follower) handle(raw []byte) error {
	if f.Decoder.Learn(raw) {
		return nil
	}
	if err := f.Decoder.Decode(raw, &f.ev); err != nil {
		f.Undecodable++
		return nil
	}
	f.Events++
	if f.Tree.RepeatedExit(&f.ev) {
		return nil // one end per process, in the tree and in the feed
	}
	before := f.credBefore(&f.ev)
	f.Tree.Apply(&f.ev)
	if f.OnEvent != nil {
		if err := f.OnEvent(&f.ev); err != nil {
			return err
		}
	}
	if before != nil && before.IDs != f.ev.Cred.IDs {
		return f.execCred(before)
	}
	return nil
}

// credBefore returns, for an exec, its process's credentials before it:
// the tree's, or those a setns or unshare since left it with (entering or
// making a user namespace changes them; the tree judges findings by the
// credentials of its last exec or credential call, so it does not take
// them). It keeps those for later, and forgets them at an exec, a
// credential call or the exit.
func (f *Follower) credBefore(ev *events.Event) *events.Cred {
	key := events.Key{PID: ev.PID, Start: ev.StartBoot}
	switch ev.Type {
	case events.TypeSetns, events.TypeUnshare:
		if ev.Ret == 0 && ev.TID == ev.PID && ev.Cred.Known {
			if p := f.Tree.Subject(ev); p != nil && p.cred != nil && p.cred.IDs != ev.Cred.IDs {
				if len(f.nsCred) >= maxCreds {
					clear(f.nsCred)
				}
				c := ev.Cred
				f.nsCred[key] = &c
			}
		}
	case events.TypeExit, events.TypeCred:
		// A credential call since is in the tree: it holds them now.
		delete(f.nsCred, key)
	case events.TypeExec:
		if !ev.Cred.Known {
			return nil
		}
		if c, ok := f.nsCred[key]; ok {
			delete(f.nsCred, key)
			return c
		}
		if p := f.Tree.Subject(ev); p != nil {
			return p.cred
		}
	}
	return nil
}

// execCred reports what an exec (the event just handled) changed of its
// process's credentials (a set-user-ID or file-capability program, or
// capabilities recomputed) as a cred event after it, as a credential
// system call's is: the kernel side does not trace execve's entry and exit
// to see them, which cost every exec as much as the exec record itself.
func (f *Follower) execCred(before *events.Cred) error {
	ev := &f.ev
	ev.Type, ev.Syscall, ev.OldIDs = events.TypeCred, unix.SYS_EXECVE, before.IDs
	ev.OldTID, ev.FilenameLen, ev.ArgsLen, ev.ArgsTruncated = 0, 0, 0, false
	ev.ExeUnlinked, ev.ExeMemfd, ev.Findings = false, false, ev.Findings[:0]
	f.Tree.Apply(ev)
	if f.OnEvent != nil {
		return f.OnEvent(ev)
	}
	return nil
}

func (f *Follower) idle() error {
	lost, err := f.src.Lost()
	if err != nil {
		return err
	}
	if lost > f.Lost {
		ev := events.Event{Type: events.TypeLost, Time: time.Now().UnixNano(), Count: lost - f.Lost}
		f.Lost = lost
		if err := f.snapshot(); err != nil {
			return fmt.Errorf("resync the tree after lost events: %w", err)
		}
		f.resyncs++
		if f.OnEvent != nil {
			if err := f.OnEvent(&ev); err != nil {
				return err
			}
		}
	}
	if f.OnIdle != nil {
		return f.OnIdle()
	}
	return nil
}
