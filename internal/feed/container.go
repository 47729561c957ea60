package feed

import (
	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// trace --container: the events of one container, followed by name across
// restarts, whatever pid namespace it has.

// ContainerFilter keeps the events of one container: those of processes
// in its cgroup, and of processes in the pid namespace its init made that
// are not (nsenter'd shells, sidecars sharing it: their lines say
// outside_init_cgroup). A container started again under the same name (a
// restart, or rm and run) is followed, and each stop and start is logged.
type ContainerFilter struct {
	arg string            // what --container said
	C   *events.Container // the container followed; nil until seen (replay, waiting)
	// pod, with --pod, is followed instead: its containers, by its
	// name, and the pid namespace they share, if they do.
	pod     *container.PodRef
	podSeen bool
	// view is the pid namespace the container's init made, while it
	// lives; 0 when the container is stopped or has none of its own
	// (--pid=host, --pid=container:OTHER).
	view    uint32
	stopped bool
	log     zerolog.Logger
	// Replay: the events are a recording's, told as what happened then;
	// Waiting: live, the container was not running when trace started.
	Replay, Waiting bool
}

// NewContainerFilter follows c (nil: the first container that arg names,
// as a recording's lines show it), starting from tree.
func NewContainerFilter(arg string, c *events.Container, tree *pidmap.Tree, log zerolog.Logger) *ContainerFilter {
	cf := &ContainerFilter{arg: arg, C: c, log: log}
	if c == nil {
		return cf
	}
	if ns := tree.ContainerNS(c.ID); view.MadeBy(ns, c.ID) {
		cf.view = ns.Inode
	}
	return cf
}

// NewPodFilter follows the pod ref names: its containers' processes, and
// those in the pid namespace they share while its sandbox's init holds
// it (nsenter'd shells, kubectl debug's containers).
func NewPodFilter(ref container.PodRef, tree *pidmap.Tree, log zerolog.Logger) *ContainerFilter {
	cf := &ContainerFilter{arg: ref.String(), pod: &ref, log: log}
	if tree == nil {
		return cf
	}
	for _, c := range tree.Containers() {
		if ns := tree.ContainerNS(c.ID); ref.Has(c) && cf.madeBy(ns) {
			cf.view = ns.Inode
			break
		}
	}
	return cf
}

// ReplayFilter follows --container's container or --pod's pod through a
// recording, as its lines name them; nil without either.
func ReplayFilter(spec query.Spec, log zerolog.Logger) (*ContainerFilter, error) {
	var cf *ContainerFilter
	switch {
	case spec.Container != "":
		cf = NewContainerFilter(spec.Container, nil, nil, log)
	case spec.Pod != "":
		ref, err := container.ParsePod(spec.Pod)
		if err != nil {
			return nil, err
		}
		cf = NewPodFilter(ref, nil, log)
	default:
		return nil, nil
	}
	cf.Replay = true
	return cf, nil
}

// madeBy reports whether the followed container, or pod, made pid
// namespace ns: its init, while it lives, is theirs.
func (cf *ContainerFilter) madeBy(ns *pidmap.PidNS) bool {
	if cf.pod == nil {
		return cf.C != nil && view.MadeBy(ns, cf.C.ID)
	}
	return view.PodMadeBy(ns, *cf.pod)
}

// Found reports whether the container, or a container of the pod, was seen.
func (cf *ContainerFilter) Found() bool { return cf.C != nil || cf.podSeen }

// label names what is followed, for the log.
func (cf *ContainerFilter) label() string {
	if cf.pod != nil {
		return "pod " + termsafe.String(cf.pod.String())
	}
	return termsafe.String(cf.C.Label())
}

// Keeps reports whether ev, already applied to tree, passes cf (--container,
// when not nil) and filter: what trace writes, live and with --from. Both
// see every event, whatever the other says: each follows state from the
// events in order (the container's init, --pid's subtree).
func Keeps(cf *ContainerFilter, filter *Filter, ev *events.Event, tree *pidmap.Tree) bool {
	inContainer := cf == nil || cf.Keep(ev, tree)
	return filter.Match(ev) && inContainer
}

// Keep reports whether ev, already applied to tree, is the container's. It
// sees every event, whatever the other filters keep, to notice the
// container's init start and exit.
func (cf *ContainerFilter) Keep(ev *events.Event, tree *pidmap.Tree) bool {
	if cf.member(ev) {
		cf.watchInit(ev)
		return true
	}
	if cf.view == 0 {
		return false
	}
	// The kernel reuses a dead namespace's inode: the namespace counts only
	// while the container's own init holds it.
	if !cf.madeBy(tree.Namespace(cf.view)) {
		return false
	}
	for i := 0; i < ev.Levels; i++ {
		if ev.PidNS[i] == cf.view {
			return true
		}
	}
	return false
}

// member reports whether ev's subject is in the container's cgroup, taking
// up a new container that has the followed one's name.
func (cf *ContainerFilter) member(ev *events.Event) bool {
	cg := ev.Cgroup
	if cf.pod != nil {
		in := cg != nil && cf.pod.Has(cg.Container)
		if in && !cf.podSeen && cf.Waiting {
			cf.at(ev).Str("pod", termsafe.String(cf.pod.String())).Str("uid", termsafe.String(cg.Container.Pod.UID)).
				Msg("the pod started: following it")
		}
		cf.podSeen = cf.podSeen || in
		return in
	}
	if cf.C != nil && cg.In(cf.C.ID) {
		return true
	}
	if cg == nil || cg.Container == nil {
		return false
	}
	c := cg.Container
	switch {
	case cf.C == nil && c.Matches(cf.arg):
		if cf.Waiting {
			cf.at(ev).Str("container", termsafe.String(c.Qualified())).Str("id", c.ShortID()).Msg("the container started: following it")
		}
	case cf.C != nil && c.SameNamed(cf.C):
		cf.at(ev).Str("container", termsafe.String(c.Qualified())).Str("id", c.ShortID()).Str("was", cf.C.ShortID()).
			Msg("a new container has the name: following it")
	default:
		return false
	}
	cf.C = c
	return true
}

// at starts a warning about what ev tells, stamped with ev's time: in a
// replay, the log's own time is the replay's, not the recording's.
func (cf *ContainerFilter) at(ev *events.Event) *zerolog.Event {
	return cf.log.Warn().Str("at", pidmap.FormatTime(ev.Time))
}

// watchInit logs the container's stop and start from its init's events;
// a pod's, from its sandbox's (the pause process, the init of the pid
// namespace its containers share, if they do).
func (cf *ContainerFilter) watchInit(ev *events.Event) {
	if !ev.NSInit() || ev.Thread {
		return
	}
	what := "the container"
	if cf.pod != nil {
		if ev.Cgroup == nil || ev.Cgroup.Container == nil || ev.Cgroup.Container.Name != container.SandboxName {
			return
		}
		what = "the pod's sandbox"
	}
	own := ev.PidNS[ev.Levels-1]
	switch ev.Type {
	case events.TypeExit:
		if own == cf.view {
			cf.view, cf.stopped = 0, true
			msg := what + " stopped: its init exited; still tracing, to follow it if it starts again"
			if cf.Replay {
				msg = what + " stopped: its init exited"
			}
			cf.at(ev).Str("container", cf.label()).Uint32("init", ev.PID).
				Str("how", events.WaitStatus(ev.ExitStatus).String()).Msg(msg)
		}
	case events.TypeExec, events.TypeFork, events.TypeProc:
		if own == cf.view || cf.view != 0 && nestedIn(ev, cf.view) {
			return
		}
		cf.view = own
		if cf.stopped {
			cf.stopped = false
			log := cf.at(ev).Str("container", cf.label()).Uint32("init", ev.PID).Uint32("pidns", own)
			if cf.pod != nil && ev.Cgroup.Container.Pod != nil { // a sandbox's: watchInit took no other
				// A new UID: the pod was made again under its name.
				log = log.Str("uid", termsafe.String(ev.Cgroup.Container.Pod.UID))
			}
			log.Msg(what + " started again")
		}
	}
}

// nestedIn reports whether ev's own pid namespace is below ns.
func nestedIn(ev *events.Event, ns uint32) bool {
	for i := 0; i < ev.Levels-1; i++ {
		if ev.PidNS[i] == ns {
			return true
		}
	}
	return false
}
