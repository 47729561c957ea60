package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/netnames"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

var traceCommand = &command{
	name:     "trace",
	synopsis: "nspidtrace [flags] trace",
	summary:  "live NDJSON event feed on stdout until Ctrl-C, SIGTERM or --duration",
	about: `Writes one JSON object per line for every fork, exec, exit, setns, unshare, rename
and credential change (cred: setuid, capset, a set-user-ID exec, ...): time,
type, the process at every level (pid, tid, ppid, nspid, pidns, nsppid, comm,
ns, uid, gid; exec and cred lines add its credentials, cred), then the type's
own fields. A "lost" line says the kernel dropped events (the live tree is
resynchronised after it). Output is flushed whenever the kernel's buffer is
drained: at least every --flush while events keep coming, at once for the first
event after a quiet spell, and on every way out. With --from, it prints a recording's lines that pass the
filters, up to --at.`,
	examples: `  sudo nspidtrace trace --events exec | jq -c '{nspid, args}'
  sudo nspidtrace trace --container web --duration 1m > web.ndjson   followed across restarts; waits for web if it is not running
  sudo nspidtrace trace --pid $$ --threads          this shell and all it starts
  sudo nspidtrace trace --events signal,exit        who kills what, and how it ends
  sudo nspidtrace trace --events cred --netns blue  who gained or dropped privileges in ip netns blue
  nspidtrace --from incident.ndjson trace --events exit | jq 'select(.signal == 9)'
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		queryFlags(fs, o)
		netnsFlag(fs, o)
		fs.StringVar(&o.pid, "pid", "", "only process `N` and all its descendants, also those born later")
		fs.StringVar(&o.comm, "comm", "", "only processes that have had the comm `NAME` (a rename to it or away included; at exec, argv[0] too)")
		fs.StringVar(&o.events, "events", "", "only the event types in `LIST`: fork,exec,exit,setns,unshare,rename,cred, and signal (default all but signal)")
		fs.BoolVar(&o.threads, "threads", false, "also thread creation and exit (\"thread\": true)")
		fs.DurationVar(&o.duration, "duration", 0, "stop after `D`, such as 30s or 5m (default: until Ctrl-C or SIGTERM)")
		flushFlag(fs, o, loader.DefaultFlushInterval)
		fs.BoolVar(&o.snapshot, "snapshot", false, "first a proc line for every process alive at the start")
		fs.IntVar(&o.ancestors, "ancestors", events.MaxAncestors, "exec lines name at most `N` ancestors, parent first (0: none)")
		metricsFlag(fs, o)
		hostFlag(fs, o, "name the machine on every line as \"host\":`NAME` (for feeds merged from many nodes)")
	},
	run:          runTrace,
	untilStopped: true,
}

// runTrace streams the live feed, or with --from a recording's lines.
func runTrace(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		return usagef("trace takes no arguments, got %q", args[0])
	}
	if err := checkSelection(o); err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	filter, err := traceFilter(o)
	if err != nil {
		return err
	}
	if len(o.from) > 0 {
		return replayTrace(o, filter, log, stdout)
	}
	follow, subtreeRoot, err := liveSelection(o, filter, log)
	if err != nil {
		return err
	}

	// Served while the programs load: a probe gets 503 until the tree is synced.
	served, stopMetrics, err := serveMetrics(o.metrics, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	// Attach before looking at /proc, so no process slips between the two.
	tracer, err := loader.Open(loader.Options{Threads: o.threads, Signals: filter.Types.Has(events.TypeSignal), PidNS: filter.PidNS, FlushInterval: o.flush, Logger: log})
	if err != nil {
		return err
	}
	defer tracer.Close()
	if subtreeRoot != 0 {
		if err := followSubtree(filter, subtreeRoot); err != nil {
			return err
		}
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	dec, err := source.Decoder(log)
	if err != nil {
		return err
	}
	f := feed.New(stdout, tracer, dec, filter, o.ancestors, log)
	defer f.AttachMetrics(served, tracer)()
	f.Container = follow
	f.Host = []byte(o.host)
	if err := f.Start(); err != nil {
		return err
	}
	// A namespace no process is in can never have one: tracing it would
	// print nothing, forever.
	if filter.PidNS != 0 && f.Tree().Namespace(filter.PidNS) == nil {
		return notFoundError{Err: fmt.Errorf("--pidns %s: no live process is in pid namespace pid:[%d]", o.pidns, filter.PidNS)}
	}
	log.Info().Msg("tracing started")
	err = f.Run(ctx)
	f.LogEnd(log, "trace ended")
	return err
}

// liveSelection resolves what a live trace keeps, before anything is
// attached, so a typo fails fast: --pidns and --netns into filter,
// --container's follower, and --pid's process (0: none), read in the
// container's or --pidns's namespace.
func liveSelection(o *options, filter *events.Filter, log zerolog.Logger) (follow *feed.ContainerFilter, subtreeRoot int, err error) {
	if filter.PidNS, err = resolvePidNS(o.pidns); err != nil {
		return nil, 0, err
	}
	if o.netns != "" {
		// A container's name needs the live tree; the rest are read from
		// files, but the tree also tells whether a process holds the
		// namespace.
		tree, _, err := source.Live(log, false)
		if err != nil {
			return nil, 0, err
		}
		if filter.NetNS, err = view.ResolveNetNS(o.netns, tree, false); err != nil {
			return nil, 0, err
		}
	}
	pidView := filter.PidNS // where --pid's PID is read
	if o.container != "" {
		// Its processes are those in its cgroup, wherever they are: the
		// kernel reports every process's cgroup, and the feed picks.
		q, err := openQuery(o, log)
		switch {
		case errors.Is(err, container.ErrNoContainer) && o.pid == "":
			// Not running (yet): wait for it, as a responder starting
			// the trace before the container, or during its restart,
			// wants; followed from its first process on.
			log.Warn().Msg(termsafe.Message(err.Error()) + ": waiting for it to start; stop with Ctrl-C")
			follow = feed.NewContainerFilter(o.container, nil, nil, log)
			follow.Waiting = true
		case err != nil:
			return nil, 0, err
		default:
			follow = feed.NewContainerFilter(o.container, q.Container, q.Tree, log)
			pidView = q.NS.Inode
		}
	}
	if o.pid != "" {
		if subtreeRoot, err = findSubtreeRoot(o.pid, pidView); err != nil {
			return nil, 0, err
		}
	}
	return follow, subtreeRoot, nil
}

// traceFilter builds the filter of --events, --comm and --snapshot.
func traceFilter(o *options) (*events.Filter, error) {
	var filter events.Filter
	var err error
	if filter.Types, err = events.ParseTypeSet(o.events); err != nil {
		return nil, usagef("--events: %v", err)
	}
	if o.snapshot {
		filter.Types.Add(events.TypeProc)
	}
	if len(o.comm) >= events.CommLen {
		return nil, usagef("--comm %q is longer than the kernel's %d-byte comm", o.comm, events.CommLen-1)
	}
	filter.Comm = []byte(o.comm)
	return &filter, nil
}

// replayTrace prints a recording's lines that pass the filters, up to --at:
// proc lines only with --snapshot, as live. PIDs (--pid) are the
// recording's host PIDs, or REF's with --pidns.
func replayTrace(o *options, filter *events.Filter, log zerolog.Logger, stdout io.Writer) error {
	if o.threads || o.given["duration"] || o.given["host"] || o.given["metrics"] || o.given["flush"] {
		return usagef("--threads, --duration, --flush, --host and --metrics are for live tracing, not --from")
	}
	if isPID(o.pidns) {
		return usagef("with --from, give --pidns as pid:[INODE] or an inode: a PID names a process of the live system")
	}
	var err error
	if filter.PidNS, err = resolvePidNS(o.pidns); err != nil {
		return err
	}
	if o.netns != "" {
		ino, isRef, err := netnames.ParseRef(o.netns)
		if err != nil || !isRef {
			return usagef("with --from, give --netns as net:[INODE] or an inode: names and files name namespaces of the live system")
		}
		filter.NetNS = ino
	}
	if o.pid != "" {
		pid, err := parsePID("--pid", o.pid)
		if err != nil {
			return err
		}
		filter.FollowSubtree(filter.PidNS, []uint32{pid})
	}
	if o.at != "" || o.container != "" {
		// Before any line: an instant outside the recording is an
		// error, and so is a name that several containers have.
		var named []*events.Container
		seen := map[string]bool{}
		var collect func(ev *events.Event, _ []byte) error
		if o.container != "" {
			collect = func(ev *events.Event, _ []byte) error {
				if cg := ev.Cgroup; cg != nil && cg.Container != nil && cg.Container.NamedBy(o.container) && !seen[cg.Container.ID] {
					seen[cg.Container.ID] = true
					named = append(named, cg.Container)
				}
				return nil
			}
		}
		if _, err := source.Replay(o.from, o.at, zerolog.Nop(), pidmap.NewTree(0), collect); err != nil {
			return err
		}
		if len(named) > 0 {
			if err := container.OneNamed(named, o.container); err != nil {
				return usageError{Msg: "--container: " + err.Error() + " (in the recording)"}
			}
		}
	}
	var follow *feed.ContainerFilter
	if o.container != "" {
		follow = feed.NewContainerFilter(o.container, nil, nil, log)
		follow.Replay = true
	}
	w := bufio.NewWriterSize(stdout, 256<<10)
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	netnsSeen := false
	_, err = source.Replay(o.from, o.at, log, tree, func(ev *events.Event, line []byte) error {
		netnsSeen = netnsSeen || ev.NS[events.NSNet] == filter.NetNS
		if !feed.Keeps(follow, filter, ev, tree) {
			return nil
		}
		w.Write(line)
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err == nil && filter.NetNS != 0 && !netnsSeen {
		return notFoundError{Err: fmt.Errorf("--netns %s: no process of the recording is in net:[%d]", o.netns, filter.NetNS)}
	}
	if err == nil && follow != nil && follow.C == nil {
		return notFoundError{Err: fmt.Errorf("--container %s: no container of that name, ID or ID prefix in the recording", o.container)}
	}
	return err
}

// findSubtreeRoot finds the process --pid names: a PID in pid namespace ns
// when --pidns was given, else in the caller's. It returns the PID as the
// caller's procfs numbers it.
func findSubtreeRoot(arg string, ns uint32) (int, error) {
	pid, err := parsePID("--pid", arg)
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
		return 0, notFoundError{Err: fmt.Errorf("--pid: %w", err)}
	}
	return viewPID, err
}

// followSubtree restricts filter to the process viewPID (as the caller's
// procfs numbers it) and its descendants, those alive now and those to come.
func followSubtree(filter *events.Filter, viewPID int) error {
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	seeds, err := procfs.Descendants(procfs.ProcRoot, viewPID)
	if errors.Is(err, procfs.ErrNoProcess) {
		return notFoundError{Err: fmt.Errorf("--pid: the process exited: %w", err)}
	} else if err != nil {
		return err
	}
	filter.FollowSubtree(own, seeds)
	return nil
}
