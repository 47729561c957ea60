package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
)

var recordCommand = &command{
	name:     "record",
	synopsis: "nspidtrace [flags] record -o FILE",
	summary:  "a recording for later look-back with --from and --at",
	about: `Records everything for later look-back: a header (hostname, kernel, boot ID,
start), a proc line for every live process, the feed (signals included), and
an end line. The
file is created 0600 (argv can hold secrets), never replaces an existing file
without --force, is flushed at least every second and on Ctrl-C or SIGTERM.
A write failure or the file's removal ends it with exit 1; what was written
stays. Read it back with --from FILE and --at TIME on <pid>, tree and trace.`,
	examples: `  sudo nspidtrace record -o incident.ndjson          leave it running; later, anywhere:
  nspidtrace --from incident.ndjson --at 2026-11-23T10:03:00Z --pidns 'pid:[4026532156]' 52
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		const usage = "write the recording to `FILE` (created 0600)"
		fs.StringVar(&o.output, "output", "", usage)
		fs.StringVar(&o.output, "o", "", usage)
		fs.BoolVar(&o.force, "force", false, "replace FILE when it exists")
		fs.DurationVar(&o.duration, "duration", 0, "stop after `D`, such as 1h (default: until Ctrl-C or SIGTERM)")
	},
	run: runRecord,
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
	openFlags, err := recordingFlags(path, o.force)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}

	tracer, err := loader.Open(loader.Options{Signals: true, Logger: log})
	if err != nil {
		return err
	}
	defer tracer.Close()
	file, err := createRecording(path, openFlags)
	if err != nil {
		return err
	}
	defer file.Close()
	if dir := filepath.Dir(path); exposedDir(dir) {
		log.Warn().Str("dir", dir).Msg("others may write to this directory and can remove or replace the recording: prefer a directory only root writes to")
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}

	var all events.Filter
	all.Types, _ = events.ParseTypeSet("")
	all.Types.Add(events.TypeProc)
	all.Types.Add(events.TypeSignal)
	feed, err := newFeed(file, tracer, &all, events.MaxAncestors, log)
	if err != nil {
		return err
	}
	header := recordHeader()
	feed.out.Write(events.AppendHeader(nil, &header))
	if err := feed.start(); err != nil {
		return err
	}
	log.Info().Str("file", path).Msg("recording started; stop with Ctrl-C")
	lastCheck := time.Now()
	feed.follower.OnIdle = func() error {
		if err := feed.flush(); err != nil {
			return err
		}
		// Writes to a deleted file succeed, into nothing: notice it.
		if time.Since(lastCheck) < time.Second {
			return nil
		}
		lastCheck = time.Now()
		var st unix.Stat_t
		if err := unix.Fstat(int(file.Fd()), &st); err == nil && st.Nlink == 0 {
			return errors.New("the file was removed")
		}
		return nil
	}
	err = feed.run(ctx)
	if err == nil {
		// The end line says until when the recording saw everything.
		err = feed.write(&events.Event{Type: events.TypeEnd, Time: time.Now().UnixNano()})
	}
	if err == nil {
		err = feed.flush()
	}
	if err == nil {
		err = file.Sync()
	}
	feed.logEnd(log, "recording ended")
	if err != nil {
		return fmt.Errorf("recording to %s stopped: %w (the lines written before are kept)", path, err)
	}
	return file.Close()
}

// recordingFlags decides, before anything is loaded, how path is opened:
// created anew (never through a symbolic link), or with force an existing
// file replaced; a device or a pipe is written as it is. A path that would
// replace a file without force, or follow a link, is refused.
func recordingFlags(path string, force bool) (int, error) {
	const flags = os.O_WRONLY | unix.O_NOFOLLOW
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return flags | os.O_CREATE | os.O_EXCL, nil
	case err != nil:
		return 0, fmt.Errorf("record to %s: %w", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return 0, errSymlink(path)
	case st.IsDir():
		return 0, usagef("record -o %s: it is a directory", path)
	case st.Mode().IsRegular() && !force:
		return 0, errExists(path)
	case st.Mode().IsRegular():
		return flags | os.O_TRUNC, nil
	}
	return flags, nil
}

func errExists(path string) error {
	return usagef("record -o %s: the file exists (give --force to replace it, or another name)", path)
}

func errSymlink(path string) error {
	return usagef("record -o %s: it is a symbolic link; give the path it points to", path)
}

// createRecording opens path with recordingFlags' flags, readable by its
// owner only: argv can hold secrets.
func createRecording(path string, flags int) (*os.File, error) {
	f, err := os.OpenFile(path, flags, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist): // created meanwhile
		return nil, errExists(path)
	case errors.Is(err, unix.ELOOP): // made a link meanwhile
		return nil, errSymlink(path)
	case err != nil:
		return nil, fmt.Errorf("create the recording: %w", err)
	}
	// A replaced file keeps its mode: tighten it.
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("make the recording private: %w", err)
		}
	}
	return f, nil
}

// exposedDir reports whether users other than the owner may remove or
// rename files in dir: group- or world-writable, without the sticky bit
// that /tmp has.
func exposedDir(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.Mode().Perm()&0o022 != 0 && st.Mode()&os.ModeSticky == 0
}

// recordHeader describes this machine and now.
func recordHeader() events.Header {
	h := events.Header{Format: events.RecordFormat, Version: 1, Start: time.Now().UnixNano()}
	h.Hostname, _ = os.Hostname()
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		h.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	if id, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		h.BootID = strings.TrimSpace(string(id))
	}
	return h
}
