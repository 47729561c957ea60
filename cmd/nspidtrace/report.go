package main

import (
	"bufio"
	"context"
	"flag"
	"io"

	"github.com/nspidtrace/nspidtrace/internal/recording"
	"github.com/nspidtrace/nspidtrace/internal/report"
)

var reportCommand = &command{
	name:     "report",
	synopsis: "nspidtrace report --from FILE|DIR -o report.html",
	summary:  "one self-contained HTML page of a recording: timeline, stories, the tree at any instant",
	about: `Writes one HTML file of a recording, to look at in a browser and to attach to a
ticket: it opens from disk and fetches nothing (its Content-Security-Policy
forbids it). A timeline with a lane per container and pid namespace and a bar
per process from birth to exit, with markers for exec, rename, credential
changes, setns/unshare, findings and exit, and signals as arrows from sender
to receiver; wheel to zoom, drag to pan, the PIDs at every level on hover,
click a bar for its story, click between bars for the tree at that instant.
Then the containers' generations and a search (comm, PID at any level, key,
container, finding). Every string in it is the processes': it is shown as
text, never run. The file is created 0600 (argv can hold secrets).`,
	examples: `  nspidtrace report --from incident.ndjson -o incident.html
  nspidtrace report --from /var/log/nspidtrace/ --container web --since 2026-11-23T10:00:00Z --until +2h -o web.html
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		fs.Var(&o.from, "from", "the recording `FILE` (or a directory of a rotating one; give it again for more files)")
		fs.StringVar(&o.container, "container", "", "only container `NAME`'s processes and generations: its name, NAMESPACE/POD/NAME, an ID or ID prefix")
		fs.StringVar(&o.pod, "pod", "", "only Kubernetes pod `NAMESPACE/NAME`'s processes and generations, every container's")
		fs.StringVar(&o.since, "since", "", "start at `TIME`: RFC 3339 or +90s from the recording's start (default: its start)")
		fs.StringVar(&o.until, "until", "", "end at `TIME`, as --since (default: the recording's end)")
		const usage = "write the page to `FILE` (created 0600)"
		fs.StringVar(&o.output, "output", "", usage)
		fs.StringVar(&o.output, "o", "", usage)
		fs.BoolVar(&o.force, "force", false, "replace FILE when it exists")
	},
	run: runReport,
}

// runReport answers `nspidtrace report`.
func runReport(_ context.Context, o *options, args []string, _, stderr io.Writer) error {
	switch {
	case len(args) > 0:
		return usagef("report takes no arguments, got %q", args[0])
	case len(o.from) == 0:
		return usagef("report needs --from FILE|DIR: the recording to show")
	case o.output == "":
		return usagef("report needs -o FILE: the page to write")
	case o.container != "" && o.pod != "":
		return usagef("give --container or --pod, not both: --container NAMESPACE/POD/NAME names one of a pod's containers")
	}
	flags, err := recording.Flags(o.output, o.force)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	d, err := report.Build(report.Request{From: o.from, Container: o.container, Pod: o.pod, Since: o.since, Until: o.until}, log)
	if err != nil {
		return err
	}
	f, err := recording.Create(o.output, flags) // as safely as a recording: it holds as much
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	err = report.Write(w, d)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		log.Info().Str("file", o.output).Int("processes", len(d.Procs)).Msg("report written")
	}
	return err
}
