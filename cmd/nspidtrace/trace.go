package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/source"
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
		flaggedFlag(fs, o, "only lines about processes with findings (their \"findings\" field; docs/findings.md)")
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
	if err := o.spec().Check(); err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	filter, err := feed.NewFilter(o.events, o.comm, o.snapshot)
	if err != nil {
		return err
	}
	filter.Flagged = o.flagged
	if len(o.from) > 0 {
		if o.threads || o.given["duration"] || o.given["host"] || o.given["metrics"] || o.given["flush"] {
			return usagef("--threads, --duration, --flush, --host and --metrics are for live tracing, not --from")
		}
		return feed.Replay(o.spec(), o.pid, filter, log, stdout)
	}
	follow, subtreeRoot, err := feed.SelectLive(o.spec(), o.pid, filter, log)
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
		if err := feed.FollowSubtree(filter, subtreeRoot); err != nil {
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
