package feed

import (
	"bytes"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// Filter selects the events `trace` prints. Its subtree tracking must see
// every event, in order, so call Match for each one even when the answer
// does not matter.
type Filter struct {
	// Types to keep; lost lines always pass.
	Types events.TypeSet
	// PidNS, when not 0, keeps processes inside that pid namespace.
	PidNS uint32
	// NetNS, when not 0, keeps processes in that network namespace.
	NetNS uint32
	// Comm, when not empty, keeps processes that had that comm at any
	// event (see matchComm).
	Comm []byte
	// Flagged keeps processes with findings (the event's Findings, from
	// the tree that applied it).
	Flagged bool

	subtree *subtree
	// named holds the processes that have had Comm, by host TGID, with
	// their start (a PID reused is another process).
	named map[uint32]uint64
}

// subtree follows a process and all its descendants, including those born
// after it was set up. Processes alive at set-up are known by their PIDs in
// one pid namespace (seeds), so it also works when the caller cannot see
// host PIDs; once seen in an event they are followed by host TGID.
type subtree struct {
	viewNS uint32
	seeds  map[uint32]struct{}
	host   map[uint32]struct{}
}

// FollowSubtree restricts the filter to the processes seeds (PIDs as pid
// namespace viewNS numbers them, 0 for the host level: a process and its
// live descendants) and every process forked from them later.
func (f *Filter) FollowSubtree(viewNS uint32, seeds []uint32) {
	s := &subtree{viewNS: viewNS, seeds: make(map[uint32]struct{}, len(seeds)), host: make(map[uint32]struct{})}
	for _, p := range seeds {
		s.seeds[p] = struct{}{}
	}
	f.subtree = s
}

// Match reports whether ev passes the filter.
func (f *Filter) Match(ev *events.Event) bool {
	if ev.Type == events.TypeLost {
		return true
	}
	if f.subtree != nil && !f.subtree.track(ev) {
		return false
	}
	if !f.Types.Has(ev.Type) {
		return false
	}
	if f.PidNS != 0 && ev.Level(f.PidNS) < 0 {
		return false
	}
	if f.NetNS != 0 && ev.NS[events.NSNet] != f.NetNS {
		return false
	}
	if len(f.Comm) > 0 && !f.matchComm(ev) {
		return false
	}
	return !f.Flagged || len(ev.Findings) > 0
}

// matchComm reports whether ev's process has had the comm the filter
// keeps: at this event (its comm, or a rename's old comm), or at an
// earlier one. A process keeps matching after it renames itself, and one
// renamed to the comm matches from that rename on. At exec, argv[0] counts
// too: busybox's applets exec through /proc/self/exe, so their comm is
// "exe" until they rename themselves a moment later.
func (f *Filter) matchComm(ev *events.Event) bool {
	start, seen := f.named[ev.PID]
	seen = seen && (start == ev.StartBoot || start == 0 || ev.StartBoot == 0)
	if !seen && (bytes.Equal(f.Comm, ev.Comm[:ev.CommLen]) ||
		ev.Type == events.TypeRename && bytes.Equal(f.Comm, ev.OldComm[:ev.OldCommLen]) ||
		ev.Type == events.TypeExec && bytes.Equal(f.Comm, argv0Comm(ev))) {
		if f.named == nil {
			f.named = make(map[uint32]uint64)
		}
		f.named[ev.PID] = ev.StartBoot
		seen = true
	}
	if seen && ev.Type == events.TypeExit && !ev.Thread {
		delete(f.named, ev.PID)
	}
	return seen
}

// argv0Comm is argv[0]'s base name as the kernel would make it a comm:
// at most events.CommLen-1 bytes.
func argv0Comm(ev *events.Event) []byte {
	argv0, _, _ := bytes.Cut(ev.Args[:ev.ArgsLen], []byte{0})
	if i := bytes.LastIndexByte(argv0, '/'); i >= 0 {
		argv0 = argv0[i+1:]
	}
	return argv0[:min(len(argv0), events.CommLen-1)]
}

// track updates the subtree with ev and reports whether ev's subject is in it.
func (s *subtree) track(ev *events.Event) bool {
	_, in := s.host[ev.PID]
	fork := ev.Type == events.TypeFork && !ev.Thread
	lvl := 0
	if s.viewNS != 0 {
		lvl = ev.Level(s.viewNS)
	}
	if !in && lvl >= 0 {
		if _, ok := s.seeds[ev.NSPid[lvl]]; ok {
			// First sight of a process that was alive at set-up.
			in = true
			delete(s.seeds, ev.NSPid[lvl])
		} else if _, ok := s.seeds[ev.NSPPid[lvl]]; ok && fork {
			in = true
		}
	}
	if !in && fork {
		_, in = s.host[ev.PPID]
	}
	if !in {
		return false
	}
	if ev.Type == events.TypeExit && !ev.Thread {
		delete(s.host, ev.PID)
	} else {
		s.host[ev.PID] = struct{}{}
	}
	return true
}
