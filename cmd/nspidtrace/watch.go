package main

// watch: the live tree full screen, or a recording's with a time cursor.
// The sources, the drawing and the keys are internal/watch's.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/gdamore/tcell/v2"

	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/watch"
)

var watchCommand = &command{
	name:     "watch",
	synopsis: "nspidtrace [flags] watch [<pid>]",
	summary:  "the process tree full screen, kept live by the kernel's events; or a recording's, with a time cursor",
	about: `Draws the process tree on the terminal and keeps it up to date from the
kernel's events (no polling of /proc). Each row: the process's PIDs from the
host's level down, its user, its age, the tree drawing, comm and arguments,
its container and how it entered its pid namespace. New processes are marked
+ (green), exited ones ✗ (red) with their exit code or signal, for 5 s. The
header counts processes, pid namespaces, events/s and lost events.

With --container, --pidns or a <pid>, only those processes; --container
follows the container by name across restarts. With --from, the same screen
over a recording, with a time cursor: step by event, jump by time, play.
It starts at --at (default: the end), as tree --from --at would print it.

Keys (? shows them): q quit, p pause (--from: play), / filter by comm or PID,
space fold a subtree, l/L the level PIDs are shown from, Enter a process's
every field and its ancestors; --from: ←/→ an event, [/] 10 s, {/} 1 min,
g go to a time, +/- play speed.`,
	examples: `  sudo nspidtrace watch                          everything, live
  sudo nspidtrace watch --container web          one container, across restarts
  nspidtrace watch --from incident.ndjson --at 2026-11-23T10:03:00Z    a recording at 10:03
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		queryFlags(fs, o)
		flaggedFlag(fs, o, "only processes with findings (docs/findings.md), and their ancestors")
	},
	run:          runWatch,
	untilStopped: true,
}

// runWatch answers `nspidtrace watch [<pid>]`.
func runWatch(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		return usagef("watch takes at most 1 PID, got %q", args)
	}
	var pid uint32
	var err error
	if len(args) == 1 {
		if pid, err = query.ParsePID("PID", args[0]); err != nil {
			return err
		}
	}
	if err := o.spec().Check(); err != nil {
		return err
	}
	if !isTerminal(stdout) {
		return usagef("watch draws on a terminal, and stdout is not one: for lines to read or pipe, use `nspidtrace tree` (a snapshot) or `nspidtrace trace` (the feed)")
	}
	// While the screen is up, diagnostics wait, and the latest is shown in
	// its footer; they go to stderr once the terminal is restored.
	held := &heldLog{}
	defer held.writeTo(stderr)
	log, err := newLogger(held, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGHUP)
	defer stop()

	var src watch.Source
	if len(o.from) > 0 {
		rw, err := watch.OpenReplay(o.spec(), pid, log)
		if err != nil {
			return err
		}
		defer rw.Close()
		src = rw
	} else {
		lw, err := watch.OpenLive(ctx, o.spec(), pid, log, held.latest)
		if err != nil {
			return err
		}
		defer lw.Stop()
		src = lw
	}
	screen, err := tcell.NewScreen()
	if err != nil {
		return fmt.Errorf("open the terminal: %w", err)
	}
	return watch.New(screen, src).Run(ctx)
}

// heldLog keeps diagnostics while the screen is up (at most 1 MiB), and
// the latest line for the screen's footer.
type heldLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	last string
}

func (h *heldLog) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.buf.Len() < 1<<20 {
		h.buf.Write(p)
	}
	h.last = strings.TrimSpace(string(p))
	return len(p), nil
}

// latest is the last diagnostic, made safe for the terminal.
func (h *heldLog) latest() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return termsafe.String(h.last)
}

func (h *heldLog) writeTo(w io.Writer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.WriteTo(w)
}
