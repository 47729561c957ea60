package feed

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

const hostNS, ctrNS, ctrNS2 = 4026531836, 4026532156, 4026532157

var web = &events.Container{ID: strings.Repeat("a", 64), Name: "web", Runtime: "docker"}

// ev is an event of pid at the given PIDs, host first, in c's cgroup
// (nil: none) and pid namespace ns below the host's.
func ev(typ events.Type, pid, ppid uint32, c *events.Container, ns uint32, nspid ...uint32) *events.Event {
	e := &events.Event{Type: typ, PID: pid, TID: pid, PPID: ppid, Levels: len(nspid), StartBoot: uint64(pid)}
	copy(e.NSPid[:], nspid)
	copy(e.PidNS[:], []uint32{hostNS, ns}[:len(nspid)])
	e.NSPPid[0] = ppid
	e.NS[events.NSPid] = e.PidNS[len(nspid)-1]
	if c != nil {
		e.Cgroup = events.NewCgroup(0, "/docker/"+c.ID, c)
	}
	return e
}

// TestContainerFilterFollowsRestarts: a container's events are its cgroup's
// and its namespace's (a sidecar's, marked by the feed); across a restart
// (a new init, a new namespace, the same name) it is followed, and a
// namespace whose init left is no longer its.
func TestContainerFilterFollowsRestarts(t *testing.T) {
	tree := pidmap.NewTree(16)
	cf := NewContainerFilter("web", nil, nil, zerolog.Nop())
	cf.Replay = true
	restarted := &events.Container{ID: strings.Repeat("c", 64), Name: "web", Runtime: "docker"}
	steps := []struct {
		ev   *events.Event
		want bool
	}{
		{ev(events.TypeExec, 50, 1, nil, 0, 50), false},                 // the host's
		{ev(events.TypeExec, 100, 10, web, ctrNS, 100, 1), true},        // web's init
		{ev(events.TypeFork, 101, 10, nil, ctrNS, 101, 2), true},        // entered its namespace (nsenter)
		{ev(events.TypeExit, 100, 10, web, ctrNS, 100, 1), true},        // web stops
		{ev(events.TypeExec, 101, 10, nil, ctrNS, 101, 2), false},       // its namespace is no longer web's
		{ev(events.TypeExec, 200, 10, restarted, ctrNS2, 200, 1), true}, // web again
	}
	for i, s := range steps {
		tree.Apply(s.ev)
		if got := cf.Keep(s.ev, tree); got != s.want {
			t.Errorf("step %d (%s of %d): Keep = %v, want %v", i, s.ev.Type, s.ev.PID, got, s.want)
		}
	}
	if cf.C != restarted {
		t.Errorf("following %+v, want the restarted web", cf.C)
	}
}

// TestKeepsShowsBothEveryEvent: the filter's --pid subtree follows a fork
// the container filter refuses, so that a descendant born later in the
// container is still known as the subtree's.
func TestKeepsShowsBothEveryEvent(t *testing.T) {
	tree := pidmap.NewTree(16)
	var filter Filter
	filter.Types, _ = events.ParseTypeSet("")
	filter.FollowSubtree(0, []uint32{10})
	cf := NewContainerFilter("web", web, tree, zerolog.Nop())
	for _, step := range []struct {
		ev   *events.Event
		want bool
	}{
		{ev(events.TypeFork, 11, 10, nil, 0, 11), false},       // the subtree's, not web's
		{ev(events.TypeFork, 12, 11, web, ctrNS, 12, 1), true}, // both
		{ev(events.TypeFork, 13, 1, web, ctrNS, 13, 2), false}, // web's, not the subtree's
	} {
		tree.Apply(step.ev)
		if got := Keeps(cf, &filter, step.ev, tree); got != step.want {
			t.Errorf("%s of %d: Keeps = %v, want %v", step.ev.Type, step.ev.PID, got, step.want)
		}
	}
}

// TestPodFilterFollowsAPodMadeAgain: --pod follows a pod by its name: its
// sandbox and containers, the namespace they share, and a pod deleted and
// made again under the name (a new UID), whose start is logged with it.
func TestPodFilterFollowsAPodMadeAgain(t *testing.T) {
	ref := container.PodRef{Namespace: "shop", Name: "web"}
	member := func(id byte, name, uid string) *events.Container {
		return &events.Container{ID: strings.Repeat(string(id), 64), Name: name, Runtime: "containerd", Pod: &events.Pod{Namespace: "shop", Name: "web", UID: uid}}
	}
	sandbox, app := member('b', container.SandboxName, "u1"), member('c', "app", "u1")
	again := member('d', container.SandboxName, "u2")
	other := &events.Container{ID: strings.Repeat("e", 64), Name: "app", Pod: &events.Pod{Namespace: "dev", Name: "web", UID: "u3"}}
	var log strings.Builder
	tree := pidmap.NewTree(16)
	cf := NewPodFilter(ref, nil, zerolog.New(&log))
	for i, s := range []struct {
		ev   *events.Event
		want bool
	}{
		{ev(events.TypeExec, 100, 1, sandbox, ctrNS, 100, 1), true},  // the pause: the namespace's init
		{ev(events.TypeExec, 101, 1, app, ctrNS, 101, 2), true},      // a container of the pod
		{ev(events.TypeExec, 102, 1, nil, ctrNS, 102, 3), true},      // nsenter'd into the shared namespace
		{ev(events.TypeExec, 103, 1, other, ctrNS2, 103, 1), false},  // another namespace's pod of that name
		{ev(events.TypeExit, 100, 1, sandbox, ctrNS, 100, 1), true},  // the pod deleted
		{ev(events.TypeExec, 200, 1, again, ctrNS2+1, 200, 1), true}, // made again
	} {
		tree.Apply(s.ev)
		if got := cf.Keep(s.ev, tree); got != s.want {
			t.Errorf("step %d (%s of %d): Keep = %v, want %v", i, s.ev.Type, s.ev.PID, got, s.want)
		}
	}
	if !strings.Contains(log.String(), `"uid":"u2"`) || !strings.Contains(log.String(), "started again") {
		t.Errorf("the pod made again is not logged with its UID:\n%s", log.String())
	}
}
