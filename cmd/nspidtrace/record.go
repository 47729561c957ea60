package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
)

// runRecord writes a recording: a header, a proc line per live process,
// then the feed, until interrupted or --duration.
func runRecord(ctx context.Context, common commonFlags, args []string, stdout, stderr io.Writer) error {
	var path string
	var duration time.Duration
	fs := newFlagSet("record")
	common.registerBase(fs)
	fs.StringVar(&path, "o", "", "")
	fs.StringVar(&path, "output", "", "")
	fs.DurationVar(&duration, "duration", 0, "")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return helpOr(err, stdout)
	}
	switch {
	case len(positional) > 0:
		return usagef("record takes no arguments, got %q", positional[0])
	case path == "":
		return usagef("record needs -o FILE")
	case common.from != "" || common.at != "" || common.pidns != "" || common.container != "":
		return usagef("record records everything, live: --from, --at, --pidns and --container are for reading it back")
	case duration < 0:
		return usagef("--duration must not be negative")
	}
	log, err := newLogger(stderr, common.logLevel, common.logFormat)
	if err != nil {
		return err
	}

	tracer, err := loader.Open(loader.Options{Logger: log})
	if err != nil {
		return err
	}
	defer tracer.Close()
	file, err := createPrivate(path)
	if err != nil {
		return err
	}
	defer file.Close()
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}

	var all events.Filter
	all.Types, _ = events.ParseTypeSet("")
	feed, err := newFeed(file, tracer, &all)
	if err != nil {
		return err
	}
	header := recordHeader()
	feed.out.Write(events.AppendHeader(nil, &header))
	// Programs are attached: what changes during the snapshot follows it.
	if err := tracer.Snapshot(feed.handle); err != nil {
		return err
	}
	log.Info().Str("file", path).Msg("recording started; stop with Ctrl-C")
	lastCheck := time.Now()
	err = tracer.Run(ctx, feed.handle, func() error {
		if err := feed.idle(); err != nil {
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
	})
	if ferr := feed.flush(); err == nil {
		err = ferr
	}
	if err == nil {
		err = file.Sync()
	}
	log.Info().Uint64("events", feed.seen).Uint64("written", feed.written).Uint64("lost", feed.lostTotal).Msg("recording ended")
	if err != nil {
		return fmt.Errorf("recording to %s stopped: %w (the lines written before are kept)", path, err)
	}
	return file.Close()
}

// createPrivate creates (or truncates) path readable by its owner only:
// argv can hold secrets.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create the recording: %w", err)
	}
	// An existing file keeps its mode: tighten it, unless it is not a
	// file of ours to change (a device, a pipe).
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("make the recording private: %w", err)
		}
	}
	return f, nil
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
