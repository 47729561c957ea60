package feed

import (
	"errors"
	"fmt"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
	"github.com/rs/zerolog"
)

// What trace keeps: its filter and the selection flags, resolved live.

// NewFilter builds trace's filter of --events (types), --comm (comm) and
// --snapshot (proc lines first).
func NewFilter(types, comm string, snapshot bool) (*Filter, error) {
	var filter Filter
	var err error
	if filter.Types, err = events.ParseTypeSet(types); err != nil {
		return nil, fault.Usagef("--events: %v", err)
	}
	if snapshot {
		filter.Types.Add(events.TypeProc)
	}
	if len(comm) >= events.CommLen {
		return nil, fault.Usagef("--comm %q is longer than the kernel's %d-byte comm", comm, events.CommLen-1)
	}
	filter.Comm = []byte(comm)
	return &filter, nil
}

// SelectLive resolves what a live trace keeps, before anything is
// attached, so a typo fails fast: --pidns and --netns into filter,
// --container's follower, and --pid's process (pid; subtreeRoot 0: none),
// read in the container's or --pidns's namespace.
func SelectLive(spec query.Spec, pid string, filter *Filter, log zerolog.Logger) (follow *ContainerFilter, subtreeRoot int, err error) {
	if filter.PidNS, err = query.ResolvePidNS(spec.PidNS); err != nil {
		return nil, 0, err
	}
	if spec.NetNS != "" {
		// A container's name needs the live tree; the rest are read from
		// files, but the tree also tells whether a process holds the
		// namespace.
		tree, _, err := source.Live(log, false)
		if err != nil {
			return nil, 0, err
		}
		if filter.NetNS, err = view.ResolveNetNS(spec.NetNS, tree, false); err != nil {
			return nil, 0, err
		}
	}
	pidView := filter.PidNS // where --pid's PID is read
	if spec.Pod != "" {
		ref, err := container.ParsePod(spec.Pod)
		if err != nil {
			return nil, 0, err
		}
		q, err := query.Open(spec, log)
		switch {
		case errors.Is(err, container.ErrNoPod) && pid == "":
			log.Warn().Msg(termsafe.Message(err.Error()) + ": waiting for it to start; stop with Ctrl-C")
			follow = NewPodFilter(ref, nil, log)
			follow.Waiting = true
		case err != nil:
			return nil, 0, err
		default:
			follow = NewPodFilter(ref, q.Tree, log)
			pidView = q.NS.Inode
		}
	}
	if spec.Container != "" {
		// Its processes are those in its cgroup, wherever they are: the
		// kernel reports every process's cgroup, and the feed picks.
		q, err := query.Open(spec, log)
		switch {
		case errors.Is(err, container.ErrNoContainer) && pid == "":
			// Not running (yet): wait for it, as a responder starting
			// the trace before the container, or during its restart,
			// wants; followed from its first process on.
			log.Warn().Msg(termsafe.Message(err.Error()) + ": waiting for it to start; stop with Ctrl-C")
			follow = NewContainerFilter(spec.Container, nil, nil, log)
			follow.Waiting = true
		case err != nil:
			return nil, 0, err
		default:
			follow = NewContainerFilter(spec.Container, q.Container, q.Tree, log)
			pidView = q.NS.Inode
		}
	}
	if pid != "" {
		if subtreeRoot, err = findSubtreeRoot(pid, pidView); err != nil {
			return nil, 0, err
		}
	}
	return follow, subtreeRoot, nil
}

// findSubtreeRoot finds the process --pid names: a PID in pid namespace ns
// when --pidns was given, else in the caller's. It returns the PID as the
// caller's procfs numbers it.
func findSubtreeRoot(arg string, ns uint32) (int, error) {
	pid, err := query.ParsePID("--pid", arg)
	if err != nil {
		return 0, err
	}
	if ns == 0 {
		if ns, err = procfs.OwnPidNS(procfs.ProcRoot); err != nil {
			return 0, fmt.Errorf("read the caller's pid namespace: %w", err)
		}
	}
	viewPID, err := procfs.FindInNS(procfs.ProcRoot, ns, pid)
	if errors.Is(err, procfs.ErrNoProcess) {
		return 0, fault.NotFound{Err: fmt.Errorf("--pid: %w", err)}
	}
	return viewPID, err
}

// FollowSubtree restricts filter to the process viewPID (as the caller's
// procfs numbers it) and its descendants, those alive now and those to come.
func FollowSubtree(filter *Filter, viewPID int) error {
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	seeds, err := procfs.Descendants(procfs.ProcRoot, viewPID)
	if errors.Is(err, procfs.ErrNoProcess) {
		return fault.NotFound{Err: fmt.Errorf("--pid: the process exited: %w", err)}
	} else if err != nil {
		return err
	}
	filter.FollowSubtree(own, seeds)
	return nil
}
