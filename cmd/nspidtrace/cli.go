package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelp ends a command that printed its help: exit 0.
var errHelp = errors.New("help shown")

// errHelpFlag is -h or --help among a command's flags.
var errHelpFlag = flag.ErrHelp

const usageText = `nspidtrace shows processes at every pid-namespace level, live from the kernel.

Usage:
  nspidtrace [flags] <pid>        the process at every pid-namespace level, host first
  nspidtrace [flags] tree [<pid>] process tree with the PID at every level (all, or <pid>'s subtree)
  nspidtrace [flags] trace        live NDJSON event feed on stdout until Ctrl-C, SIGTERM or --duration
  nspidtrace record -o FILE       a recording for later look-back with --from and --at
  nspidtrace version              print the version

Flags for every command:
  --pidns REF          look from inside pid namespace REF: only processes inside it, and
                       --pid read as a PID there. REF is a PID (that process's namespace), a
                       path such as /proc/N/ns/pid, pid:[INODE], or a bare inode number
  --container ID       only that container's processes (those in its pid namespace, docker
                       exec'd ones too), seen from there; a full ID or a unique prefix
  --log-level LEVEL    diagnostics on stderr: trace, debug, info, warn, error (default info)
  --log-format FORMAT  console or json (default console)
  --from FILE          (<pid>, tree, trace) answer from a recording (or trace --snapshot output)
                       instead of the live kernel; --pidns REF and PIDs are then the recording's
  --at TIME            with --from: the instant to look at, RFC 3339 (2026-11-23T10:03:00Z)
                       or an offset from the recording's start (+90s); default: its end
  -o, --output FORMAT  text or json, for <pid> and tree (default text; json prints the
                       "proc" object of the feed, one per line, parents first)

<pid> is read in the caller's pid namespace (in REF's with --pidns), as the
kernel would read it: run inside a container, "nspidtrace 52" still shows the
host's PIDs. tree marks with [pid:[INODE]] where a process's pid namespace
differs from its parent's; with --pidns, a process whose parent is outside
REF (a shell from docker exec or nsenter) is a root of its own.

Flags for trace:
  --pid N              N and all its descendants, also those born later
                       (N as the caller's pid namespace sees it, or REF's with --pidns)
  --comm NAME          only processes whose comm is NAME
  --events LIST        comma-separated: fork,exec,exit,setns,unshare (default all)
  --threads            also thread creation and exit ("thread": true)
  --duration D         stop after D, such as 30s or 5m (default: until interrupted)
  --snapshot           first a "proc" line for every live process

Each line of trace is one JSON object: time, type, the process at every level
(pid, tid, ppid, nspid, pidns, nsppid, comm, ns, uid, gid), then the type's own
fields. A "lost" line says the kernel dropped events.

record writes a header, a "proc" line per live process, then the feed; it is
flushed at least every second and on Ctrl-C or SIGTERM, and created 0600
(argv can hold secrets). Flags: -o FILE (required), --duration D.

Examples:
  sudo nspidtrace 12573                                   one process at every level
  sudo nspidtrace --pidns 12573 52                        PID 52 in 12573's pid namespace
  sudo nspidtrace tree --pidns /proc/12573/ns/pid         a container's processes
  sudo nspidtrace trace                                   everything, as NDJSON
  sudo nspidtrace trace --events exec | jq -c '{nspid, args}'
  sudo nspidtrace trace --pidns $(pidof -s nginx) --duration 1m > nginx.ndjson
  sudo nspidtrace trace --pid $$ --threads                this shell and all it starts
  sudo nspidtrace record -o incident.ndjson               leave it running; later, anywhere:
  nspidtrace --from incident.ndjson --at 2026-11-23T10:03:00Z --pidns 'pid:[4026532156]' 52
                                                          which host process was PID 52 there then
  nspidtrace --from incident.ndjson trace --events exit | jq 'select(.signal == 9)'

Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 not found.
Needs root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF.
`

// commonFlags are the flags every command takes.
type commonFlags struct {
	pidns     string
	container string
	logLevel  string
	logFormat string
	output    string
	from      string
	at        string
}

// register adds the flags to fs. They may stand before the command and
// after it, so each flag set starts from what an earlier one parsed.
func (c *commonFlags) register(fs *flag.FlagSet) {
	c.registerBase(fs)
	fs.StringVar(&c.output, "o", c.output, "")
	fs.StringVar(&c.output, "output", c.output, "")
}

// registerBase adds every common flag but -o, which `record` takes for its
// file.
func (c *commonFlags) registerBase(fs *flag.FlagSet) {
	fs.StringVar(&c.pidns, "pidns", c.pidns, "")
	fs.StringVar(&c.container, "container", c.container, "")
	fs.StringVar(&c.logLevel, "log-level", c.logLevel, "")
	fs.StringVar(&c.logFormat, "log-format", c.logFormat, "")
	fs.StringVar(&c.from, "from", c.from, "")
	fs.StringVar(&c.at, "at", c.at, "")
}

// checkOutput validates -o/--output.
func (c *commonFlags) checkOutput() error {
	if c.output != "text" && c.output != "json" {
		return usagef("bad --output %q (want text or json)", c.output)
	}
	return nil
}

// newFlagSet returns a quiet flag set: errors come back to run, which
// prints one line and exits 2.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, as GNU tools accept them, and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelpFlag
			}
			return nil, usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// dispatch parses the command line and runs the command it names.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	common := commonFlags{logLevel: "info", logFormat: "console", output: "text"}
	fs := newFlagSet("nspidtrace")
	common.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return errHelp
		}
		return usageError{err.Error()}
	}
	if fs.NArg() == 0 {
		return usagef("no command given (want a PID, tree, trace, record or version)")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "trace":
		return runTrace(ctx, common, rest, stdout, stderr)
	case "tree":
		return runTree(ctx, common, rest, stdout, stderr)
	case "record":
		return runRecord(ctx, common, rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "nspidtrace %s\n", version)
		return nil
	case "help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	if cmd != "" && cmd[0] >= '0' && cmd[0] <= '9' {
		return runShow(ctx, common, fs.Args(), stdout, stderr)
	}
	return usagef("unknown command %q (want a PID, tree, trace, record or version)", cmd)
}
