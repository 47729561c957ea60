package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/story"
)

var storyCommand = &command{
	name:     "story",
	synopsis: "nspidtrace [flags] story <pid>|KEY",
	summary:  "a process's whole life from a recording, one fact per line; with --container NAME (or --pod), a container's generations and who entered it",
	about: `Tells a process's life in time order, one fact per line: its birth (its
parent, its PIDs at every level, whether it entered its pid namespace from
outside), each exec (file, argv, credentials that changed), renames,
credential changes, setns and unshare, signals it sent and received (the other
side's comm and key), its children (collapsed: "forked 1,204 children: 1,190
exited with 0"), its findings, and its exit (code, signal, core, reaper).

<pid> is read at --at (default: the recording's end) as tree --from --at
would find it; a KEY (PID@START, from any line's "key") names one process
whatever held the PID. --descendants adds its subtree's stories, indented.

With --container NAME instead: the container's generations (ID, init, start,
end, how it ended and who sent the signal), then each process that entered it
(docker exec, kubectl exec, nsenter) with its story, and the command on this
host that asked for the entry where one did, with the evidence. With --pod
NAMESPACE/NAME: the generations of every container of the pod, its sandbox
(POD) too, each row naming its container.

Without --from, from the live system: what a snapshot shows (record to tell
lives).`,
	examples: `  nspidtrace --from incident.ndjson --at 2026-11-23T10:03:00Z story 12573
  nspidtrace --from /var/log/nspidtrace/ story --container web
  nspidtrace --from /var/log/nspidtrace/ story --pod shop/web-7d9f
  nspidtrace --from incident.ndjson story 12573@8123456789 --descendants -o json | jq -c 'select(.fact == "exec")'
`,
	flags: func(fs *flag.FlagSet, o *options) {
		logFlags(fs, o)
		queryFlags(fs, o)
		const usage = "print as `FORMAT`: text, or json (one object per fact, generation and entry)"
		fs.StringVar(&o.output, "output", "text", usage)
		fs.StringVar(&o.output, "o", "text", usage)
		fs.BoolVar(&o.descendants, "descendants", false, "also the stories of the processes it forks, and theirs, indented")
		flaggedFlag(fs, o, "only the stories of processes with findings (docs/findings.md)")
	},
	run: runStory,
}

// runStory answers `nspidtrace story`.
func runStory(_ context.Context, o *options, args []string, stdout, stderr io.Writer) error {
	r := story.Request{Spec: o.spec(), Descendants: o.descendants}
	switch {
	case len(args) > 1:
		return usagef("story takes one PID or KEY, got %q", args)
	case len(args) == 1 && strings.Contains(args[0], "@"):
		key, ok := events.ParseKey(args[0])
		if !ok {
			return usagef("story: %q is not a key (want PID@START, as lines write it)", args[0])
		}
		r.Key = key
	case len(args) == 1:
		pid, err := query.ParsePID("PID", args[0])
		if err != nil {
			return err
		}
		r.PID = pid
	case o.container == "" && o.pod == "":
		return usagef("story needs a PID, a KEY, --container NAME or --pod NAMESPACE/NAME")
	}
	if o.output != "text" && o.output != "json" {
		return usagef("bad --output %q (want text or json)", o.output)
	}
	if err := r.Spec.Check(); err != nil {
		return err
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	told, err := story.Tell(r, log)
	if err != nil {
		return err
	}
	if o.flagged {
		if told.Stories = story.Flagged(told.Stories); len(told.Stories) == 0 {
			return notFoundError{Err: fmt.Errorf("--flagged: no process told has a finding")}
		}
	}
	w := bufio.NewWriter(stdout)
	if o.output == "json" {
		told.WriteJSON(w)
	} else {
		told.WriteText(w)
	}
	return w.Flush()
}
