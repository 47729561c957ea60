package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/feed"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/recording"
	"github.com/nspidtrace/nspidtrace/internal/source"
)

var recordCommand = &command{
	name:     "record",
	synopsis: "nspidtrace [flags] record -o FILE",
	summary:  "a recording for later look-back with --from and --at",
	about: `Records everything for later look-back: a header (hostname, kernel, boot ID,
start), a proc line for every live process, the feed (signals included), and
an end line. The file is created 0600 (argv can hold secrets), never replaces
an existing file without --force, is flushed at least every second and on
Ctrl-C or SIGTERM. A write failure or the file's removal ends it with exit 1;
what was written stays. Read it back with --from FILE and --at TIME on <pid>,
tree and trace.

With --rotate-size or --rotate-age it writes a series of files instead, each a
complete recording, named by its start: -o /var/log/nspt/node.ndjson gives
node-20261123T100300.000Z.ndjson, node-20261123T110300.000Z.ndjson, ...; -o DIR
gives DIR/nspidtrace-TIME.ndjson. --keep N removes the oldest files of the
series beyond N. --from DIR (or --from given once per file) reads them back
as one timeline.`,
	examples: `  sudo nspidtrace record -o incident.ndjson          leave it running; later, anywhere:
  nspidtrace --from incident.ndjson --at 2026-11-23T10:03:00Z --pidns 'pid:[4026532156]' 52
  sudo nspidtrace record -o /var/log/nspidtrace/ --rotate-size 100M --rotate-age 1h --keep 48
  nspidtrace --from /var/log/nspidtrace/ --at 2026-11-23T10:03:00Z tree --container web
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		const usage = "write the recording to `FILE` (created 0600)"
		fs.StringVar(&o.output, "output", "", usage)
		fs.StringVar(&o.output, "o", "", usage)
		fs.BoolVar(&o.force, "force", false, "replace FILE when it exists")
		fs.DurationVar(&o.duration, "duration", 0, "stop after `D`, such as 1h (default: until Ctrl-C or SIGTERM)")
		flushFlag(fs, o, loader.IdleInterval)
		metricsFlag(fs, o)
		fs.StringVar(&o.rotateSize, "rotate-size", "", "start a new file when this one reaches `SIZE` (such as 100M or 1G; at least 1M), and holds as much of the feed as its proc lines: -o names the series, see above")
		fs.DurationVar(&o.rotateAge, "rotate-age", 0, "start a new file when this one is `D` old (such as 1h)")
		fs.IntVar(&o.keep, "keep", 0, "with rotation, keep the newest `N` files and remove older ones of the series (default 0: keep all)")
		hostFlag(fs, o, "the header's hostname: `NAME` (default: this machine's; in a pod, give the node's)")
	},
	run:          runRecord,
	untilStopped: true,
}

// runRecord writes a recording until interrupted or --duration.
func runRecord(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	path := o.output
	switch {
	case len(args) > 0:
		return usagef("record takes no arguments, got %q", args[0])
	case path == "":
		return usagef("record needs -o FILE")
	}
	rec := &recording.Writer{Host: o.host}
	openFlags, err := planRecording(rec, o)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}

	// Served while the programs load: a probe gets 503 until the tree is synced.
	served, stopMetrics, err := serveMetrics(o.metrics, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	tracer, err := loader.Open(loader.Options{Signals: true, FlushInterval: o.flush, Logger: log})
	if err != nil {
		return err
	}
	defer tracer.Close()
	now := time.Now()
	if err := rec.Open(path, openFlags, now); err != nil {
		return err
	}
	defer func() { rec.File.Close() }()
	if dir := filepath.Dir(rec.Path); recording.ExposedDir(dir) {
		log.Warn().Str("dir", dir).Msg("others may write to this directory and can remove or replace the recording: prefer a directory only root writes to")
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}

	var all feed.Filter
	all.Types, _ = events.ParseTypeSet("")
	all.Types.Add(events.TypeProc)
	all.Types.Add(events.TypeSignal)
	dec, err := source.Decoder(log)
	if err != nil {
		return err
	}
	f := feed.New(rec, tracer, dec, &all, events.MaxAncestors, log)
	defer f.AttachMetrics(served, tracer)()
	if err := rec.Begin(f, now); err != nil {
		return err
	}
	if err := f.Start(); err != nil {
		return err
	}
	if rec.Series != nil {
		log.Info().Str("file", rec.Path).Str("series", rec.Series.Pattern()).Msg("recording started; stop with Ctrl-C")
	} else {
		log.Info().Str("file", path).Msg("recording started; stop with Ctrl-C")
	}

	f.Sink = rec.Rotation(f, log)
	err = f.Run(ctx)
	if err == nil {
		// The end line says until when the recording saw everything.
		err = rec.End(f, time.Now())
	}
	f.LogEnd(log, "recording ended")
	if err != nil {
		return fmt.Errorf("recording to %s stopped: %w (the lines written before are kept)", rec.Path, err)
	}
	return nil
}

// planRecording checks -o and the rotation flags before anything is loaded, and
// returns how a single file is opened.
func planRecording(r *recording.Writer, o *options) (openFlags int, err error) {
	rotating := o.rotateSize != "" || o.rotateAge != 0
	switch {
	case o.keep < 0:
		return 0, usagef("--keep must be 0 (every file) or more")
	case o.keep > 0 && !rotating:
		return 0, usagef("--keep goes with --rotate-size or --rotate-age")
	case !rotating:
		return recording.Flags(o.output, o.force)
	case o.force:
		return 0, usagef("--force does not go with rotation: every file of the series is new")
	case o.given["rotate-age"] && o.rotateAge < time.Second:
		return 0, usagef("--rotate-age %v is too short (at least 1s)", o.rotateAge)
	}
	var size int64
	if o.rotateSize != "" {
		if size, err = recording.ParseSize(o.rotateSize); err != nil {
			return 0, usagef("--rotate-size: %v", err)
		}
		if size < recording.MinRotateSize {
			return 0, usagef("--rotate-size %s is too small: every file starts with a snapshot of every process, so give at least 1M", o.rotateSize)
		}
	}
	r.Series, err = recording.NewSeries(o.output, size, o.rotateAge, o.keep)
	return 0, err
}
