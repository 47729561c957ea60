package main

import (
	"io"
	"runtime/debug"

	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// spec is what the selection flags ask to look at.
func (o *options) spec() query.Spec {
	return query.Spec{PidNS: o.pidns, Container: o.container, Pod: o.pod, NetNS: o.netns, From: o.from, At: o.at, NoArgs: o.noArgs, Flagged: o.flagged}
}

// oneShotQuery starts <pid> and tree, which answer once and exit: it checks
// --output, makes the logger and opens the view. For <pid>, pid is the PID
// asked about, and /proc answers when it can (query.Lineage); tree passes
// 0. Garbage collection is off: the command holds at most the kernel's BTF
// and the tree (a recording is streamed), and no collection is worth its
// time (measured: 5 of 56 ms).
func oneShotQuery(o *options, pid uint32, stderr io.Writer) (*view.View, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return nil, err
	}
	debug.SetGCPercent(-1)
	// The flags are checked before either path answers.
	if err := o.spec().Check(); err != nil {
		return nil, err
	}
	if pid != 0 && o.output != "json" {
		if v := query.Lineage(o.spec(), pid, log); v != nil {
			return v, nil
		}
	}
	return query.Open(o.spec(), log)
}
