package feed

import (
	"bufio"
	"fmt"
	"io"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/netnames"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/rs/zerolog"
)

// Replay writes to stdout the lines of spec's recording that pass filter,
// --container and --pid (pid), up to spec.At, as Keeps keeps them live:
// proc lines only with --snapshot. PIDs (--pid) are the recording's host
// PIDs, or REF's with --pidns.
func Replay(spec query.Spec, pid string, filter *Filter, log zerolog.Logger, stdout io.Writer) error {
	if query.IsPID(spec.PidNS) {
		return fault.Usagef("with --from, give --pidns as pid:[INODE] or an inode: a PID names a process of the live system")
	}
	var err error
	if filter.PidNS, err = query.ResolvePidNS(spec.PidNS); err != nil {
		return err
	}
	if spec.NetNS != "" {
		ino, isRef, err := netnames.ParseRef(spec.NetNS)
		if err != nil || !isRef {
			return fault.Usagef("with --from, give --netns as net:[INODE] or an inode: names and files name namespaces of the live system")
		}
		filter.NetNS = ino
	}
	if pid != "" {
		n, err := query.ParsePID("--pid", pid)
		if err != nil {
			return err
		}
		filter.FollowSubtree(filter.PidNS, []uint32{n})
	}
	if spec.At != "" || spec.Container != "" {
		// Before any line: an instant outside the recording is an
		// error, and so is a name that several containers have.
		var named []*events.Container
		seen := map[string]bool{}
		var collect func(ev *events.Event, _ []byte) error
		if spec.Container != "" {
			collect = func(ev *events.Event, _ []byte) error {
				if cg := ev.Cgroup; cg != nil && cg.Container != nil && cg.Container.NamedBy(spec.Container) && !seen[cg.Container.ID] {
					seen[cg.Container.ID] = true
					named = append(named, cg.Container)
				}
				return nil
			}
		}
		if _, err := source.Replay(spec.From, spec.At, zerolog.Nop(), pidmap.NewTree(0), collect); err != nil {
			return err
		}
		if len(named) > 0 {
			if err := container.OneNamed(named, spec.Container); err != nil {
				return fault.Usage{Msg: "--container: " + err.Error() + " (in the recording)"}
			}
		}
	}
	follow, err := ReplayFilter(spec, log)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(stdout, 256<<10)
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	netnsSeen := false
	_, err = source.Replay(spec.From, spec.At, log, tree, func(ev *events.Event, line []byte) error {
		netnsSeen = netnsSeen || ev.NS[events.NSNet] == filter.NetNS
		if filter.Flagged {
			// The findings of the tree replayed, as live: a recording
			// made before findings existed carries none.
			ev.Findings = ev.Findings[:0]
			if p := tree.Subject(ev); p != nil {
				ev.Findings = p.Findings(ev.Findings)
			}
		}
		if !Keeps(follow, filter, ev, tree) {
			return nil
		}
		w.Write(line)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err == nil && filter.NetNS != 0 && !netnsSeen {
		return fault.NotFound{Err: fmt.Errorf("--netns %s: no process of the recording is in net:[%d]", spec.NetNS, filter.NetNS)}
	}
	if err == nil && follow != nil && !follow.Found() {
		return fault.NotFound{Err: container.NotSeen(spec.Container, spec.Pod, "in the recording")}
	}
	return err
}
