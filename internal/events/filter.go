package events

import "bytes"

// Filter selects the events `trace` prints. Its subtree tracking must see
// every event, in order, so call Match for each one even when the answer
// does not matter.
type Filter struct {
	// Types to keep; lost lines always pass.
	Types TypeSet
	// PidNS, when not 0, keeps processes inside that pid namespace.
	PidNS uint32
	// NetNS, when not 0, keeps processes in that network namespace.
	NetNS uint32
	// Comm, when not empty, keeps processes with that comm.
	Comm []byte

	subtree *subtree
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
func (f *Filter) Match(ev *Event) bool {
	if ev.Type == TypeLost {
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
	if f.NetNS != 0 && ev.NS[NSNet] != f.NetNS {
		return false
	}
	if len(f.Comm) > 0 && !bytes.Equal(f.Comm, ev.Comm[:ev.CommLen]) {
		return false
	}
	return true
}

// track updates the subtree with ev and reports whether ev's subject is in it.
func (s *subtree) track(ev *Event) bool {
	_, in := s.host[ev.PID]
	fork := ev.Type == TypeFork && !ev.Thread
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
	if ev.Type == TypeExit && !ev.Thread {
		delete(s.host, ev.PID)
	} else {
		s.host[ev.PID] = struct{}{}
	}
	return true
}
