package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp ends a command that printed its help: exit 0.
var errHelp = errors.New("help shown")

// errHelpFlag is -h or --help among a command's flags.
var errHelpFlag = flag.ErrHelp

const usageText = `nspidtrace shows processes at every pid-namespace level, live from the kernel.

Usage:
  nspidtrace [flags] trace      live NDJSON event feed on stdout until Ctrl-C, SIGTERM or --duration
  nspidtrace version            print the version

Flags for every command:
  --pidns REF          look from inside pid namespace REF: only processes inside it, and
                       --pid read as a PID there. REF is a PID (that process's namespace), a
                       path such as /proc/N/ns/pid, pid:[INODE], or a bare inode number
  --log-level LEVEL    diagnostics on stderr: trace, debug, info, warn, error (default info)
  --log-format FORMAT  console or json (default console)

Flags for trace:
  --pid N              N and all its descendants, also those born later
                       (N as the caller's pid namespace sees it, or REF's with --pidns)
  --comm NAME          only processes whose comm is NAME
  --events LIST        comma-separated: fork,exec,exit,setns,unshare (default all)
  --threads            also thread creation and exit ("thread": true)
  --duration D         stop after D, such as 30s or 5m (default: until interrupted)

Each line of trace is one JSON object: time, type, the process at every level
(pid, tid, ppid, nspid, pidns, nsppid, comm, ns, uid, gid), then the type's own
fields. A "lost" line says the kernel dropped events.

Examples:
  sudo nspidtrace trace                                   everything, as NDJSON
  sudo nspidtrace trace --events exec | jq -c '{nspid, args}'
  sudo nspidtrace trace --pidns $(pidof -s nginx) --duration 1m > nginx.ndjson
  sudo nspidtrace trace --pid $$ --threads                this shell and all it starts

Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 not found.
Needs root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF.
`

// commonFlags are the flags every command takes.
type commonFlags struct {
	pidns     string
	logLevel  string
	logFormat string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.pidns, "pidns", "", "")
	fs.StringVar(&c.logLevel, "log-level", "info", "")
	fs.StringVar(&c.logFormat, "log-format", "console", "")
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
	var common commonFlags
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
		return usagef("no command given (want trace or version)")
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "trace":
		return runTrace(ctx, common, rest, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "nspidtrace %s\n", version)
		return nil
	case "help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	return usagef("unknown command %q (want %s)", cmd, strings.Join([]string{"trace", "version"}, " or "))
}
