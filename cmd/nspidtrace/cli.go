package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/describe"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/metrics"
)

// options holds every flag's value. Each command registers the flags it
// takes, with their usage: help is printed from those definitions.
type options struct {
	logLevel, logFormat string

	pidns, container, pod, at string
	netns                     string // <pid>, tree, trace: only this network namespace
	from                      fileList
	output                    string // <pid> and tree: text, wide or json; record: the file
	columns                   string // <pid> and tree: the extra columns of text output
	showArgs                  bool   // tree: argv after each process, as pstree -a

	pid, comm, events string
	threads, snapshot bool
	duration          time.Duration
	flush             time.Duration
	ancestors         int    // trace: the lineage's depth on exec lines
	showAncestors     bool   // <pid>: print the lineage
	noArgs            bool   // tree as text: argv is not shown, so not copied
	flagged           bool   // tree, trace, watch, story: only processes with findings
	descendants       bool   // story: its subtree's stories too
	since, until      string // report: the window

	force bool
	host  string // trace: on every line; record: in the header

	metrics string // trace, record: where to serve metrics

	rotateSize string // record's rotation
	rotateAge  time.Duration
	keep       int

	given map[string]bool // flags set on the command line, by long name
}

// command is one subcommand of nspidtrace.
type command struct {
	name     string // as typed; "<pid>" is a PID
	synopsis string
	summary  string // one line, for the overview
	about    string // what it does, for its --help
	examples string
	flags    func(fs *flag.FlagSet, o *options)
	run      func(ctx context.Context, o *options, args []string, stdout, stderr io.Writer) error
	// untilStopped: it runs until SIGINT or SIGTERM, which cancel its ctx
	// so that it writes out what it holds. The one-shot commands keep the
	// signals' default, ending at once: they hold nothing to save, and
	// signal.Notify would start the runtime's signal threads, 2 ms of a
	// 15 ms answer.
	untilStopped bool
}

// commands, in the order the overview lists them.
var commands = []*command{pidCommand, treeCommand, traceCommand, recordCommand, watchCommand, storyCommand, reportCommand, versionCommand}

var versionCommand = &command{
	name:     "version",
	synopsis: "nspidtrace version",
	summary:  "print the version",
	about: "Prints nspidtrace's version (also: nspidtrace --version), and the running kernel with\n" +
		"the build of the BPF programs nspidtrace loads on it, or why it cannot: what to put in\n" +
		"a bug report.",
	flags: func(*flag.FlagSet, *options) {},
	run: func(_ context.Context, _ *options, args []string, stdout, _ io.Writer) error {
		if len(args) > 0 {
			return usagef("version takes no arguments, got %q", args[0])
		}
		fmt.Fprintf(stdout, "nspidtrace %s\n", version)
		f, err := loader.ProbeFeatures()
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "kernel %s: not supported: %v\n", f.Release, err)
		case f.Compat():
			fmt.Fprintf(stdout, "kernel %s: BPF programs for Linux %s to 5.17 (it has no %s)\n", f.Release, loader.MinKernel, f.Missing())
		default:
			fmt.Fprintf(stdout, "kernel %s: BPF programs for Linux 5.18 and newer\n", f.Release)
		}
		return nil
	},
}

// maxHostLen bounds --host as DNS bounds a name.
const maxHostLen = 253

// hostFlag names the machine in what trace and record write: a node's
// feed merged with others' stays joinable by (host, key).
func hostFlag(fs *flag.FlagSet, o *options, usage string) {
	fs.StringVar(&o.host, "host", "", usage)
}

// metricsFlag serves Prometheus metrics while trace or record runs.
func metricsFlag(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on `ADDR` (/metrics, and /healthz: 200 once the tree is synced); a bare port listens on 127.0.0.1 only, :PORT on every interface")
}

// flushFlag sets how long a line may wait while events keep coming. The
// first event after a quiet spell is written at once, whatever it is.
func flushFlag(fs *flag.FlagSet, o *options, def time.Duration) {
	fs.DurationVar(&o.flush, "flush", def, "while events keep coming, write them at least every `D`, from 1ms to 1s (an event after a quiet D is written at once); a shorter D costs a busy machine more wake-ups")
}

// logFlags are taken by every command that runs.
func logFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.logLevel, "log-level", "info", "diagnostics on stderr from `LEVEL` up: trace, debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "console", "diagnostics as `FORMAT`: console or json (never on stdout)")
}

// queryFlags choose what <pid>, tree and trace look at.
func queryFlags(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.pidns, "pidns", "", "look from inside pid namespace `REF`: a PID, /proc/N/ns/pid, pid:[INODE] or an inode")
	fs.StringVar(&o.container, "container", "", "only the processes of container `NAME`: its name, NAMESPACE/POD/NAME for a pod's, its full ID or a unique ID prefix (docker, containerd, CRI-O, podman)")
	fs.StringVar(&o.pod, "pod", "", "only the processes of Kubernetes pod `NAMESPACE/NAME`: all its containers', seen from the pid namespace they share if they do")
	fs.Var(&o.from, "from", "answer from the recording `FILE` (or trace --snapshot output), not the live kernel; give it again for more files, or a directory: one timeline")
	fs.StringVar(&o.at, "at", "", "with --from, the instant `TIME`: RFC 3339 or +90s from the start (default: the end)")
}

// netnsFlag narrows <pid>, tree and trace to one network namespace.
func netnsFlag(fs *flag.FlagSet, o *options) {
	fs.StringVar(&o.netns, "netns", "", "only processes in network namespace `NAME|REF`: an ip netns name, a runtime's netns file name, a container, a path such as /run/netns/NAME or /proc/N/ns/net, net:[INODE] or an inode")
}

// outputFlag is the output format of <pid> and tree.
func outputFlag(fs *flag.FlagSet, o *options) {
	const usage = "print as `FORMAT`: text, wide (text with every column of --columns), or json (one proc object per line, parents first, with everything)"
	fs.StringVar(&o.output, "output", "text", usage)
	fs.StringVar(&o.output, "o", "text", usage)
}

// oneShotFlags are the flags of <pid> and tree.
func oneShotFlags(fs *flag.FlagSet, o *options) {
	logFlags(fs, o)
	queryFlags(fs, o)
	netnsFlag(fs, o)
	outputFlag(fs, o)
	fs.StringVar(&o.columns, "columns", "", "text output: also the columns in `LIST`, comma-separated: "+describe.ColumnNames()+" (-o wide: all of them)")
	fs.BoolVar(&o.showArgs, "a", false, "tree: each process's arguments after it, as pstree -a")
}

// flaggedFlag keeps only processes with findings (docs/findings.md).
func flaggedFlag(fs *flag.FlagSet, o *options, usage string) {
	fs.BoolVar(&o.flagged, "flagged", false, usage)
}

// flagAliases are short flags printed with their long name.
var flagAliases = map[string]string{"o": "output"}

// newFlagSet returns a quiet flag set: errors come back to run, which
// prints one line and exits 2.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// errHelp ends a command that printed its help: exit 0.
var errHelp = errors.New("help shown")

// dispatch parses the command line and runs the command it names.
func dispatch(args []string, stdout, stderr io.Writer) error {
	c, opts, positional, err := parseCommandLine(args, stdout)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if c.untilStopped {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
	}
	return c.run(ctx, opts, positional, stdout, stderr)
}

// parseCommandLine finds the command and its options. Flags may stand
// before the command (`nspidtrace --pidns 12 tree`) and after it. Help
// asked for is printed to stdout, and errHelp returned.
func parseCommandLine(args []string, stdout io.Writer) (c *command, opts *options, positional []string, err error) {
	// Before the command stand <pid>'s flags, since `nspidtrace [flags]
	// <pid>` is the first form; other commands take those they share.
	global := newFlagSet("nspidtrace")
	var o options
	pidCommand.flags(global, &o)
	showVersion := global.Bool("version", false, "print the version")
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printOverview(stdout)
			return nil, nil, nil, errHelp
		}
		return nil, nil, nil, flagError(err, args)
	}
	if *showVersion {
		return versionCommand, &o, global.Args(), nil
	}
	if global.NArg() == 0 {
		return nil, nil, nil, usagef("no command given (want a PID, tree, trace, record, watch, story, report or version)")
	}
	name, rest := global.Arg(0), global.Args()[1:]
	if name == "help" {
		if err := help(rest, stdout); err != nil {
			return nil, nil, nil, err
		}
		return nil, nil, nil, errHelp
	}
	c = findCommand(name)
	if c == nil {
		return nil, nil, nil, usagef("unknown command %q (want a PID, tree, trace, record, watch, story, report or version)", name)
	}
	if c == pidCommand {
		rest = global.Args() // the PID is its argument
	}

	fs := newFlagSet(c.name)
	opts = &options{}
	c.flags(fs, opts)
	global.Visit(func(f *flag.Flag) {
		if err == nil && f.Name != "version" {
			if fs.Lookup(f.Name) == nil {
				err = usagef("%s does not go with %s", typedFlag(f.Name, args), c.name)
			} else if list, ok := f.Value.(*fileList); ok {
				for _, v := range list.Values() {
					if err == nil {
						err = fs.Set(f.Name, v)
					}
				}
			} else {
				err = fs.Set(f.Name, f.Value.String())
			}
		}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	positional, err = parseInterspersed(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stdout, c)
		return nil, nil, nil, errHelp
	} else if err != nil {
		return nil, nil, nil, flagError(err, rest)
	}
	opts.given = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) {
		name := f.Name
		if long, ok := flagAliases[name]; ok {
			name = long
		}
		opts.given[name] = true
	})
	if err := opts.checkGiven(); err != nil {
		return nil, nil, nil, err
	}
	return c, opts, positional, nil
}

// findCommand returns the command name names, or nil.
func findCommand(name string) *command {
	if name != "" && name[0] >= '0' && name[0] <= '9' || name == "pid" {
		return pidCommand
	}
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// help answers `nspidtrace help [COMMAND]`.
func help(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		printOverview(stdout)
		return nil
	}
	c := findCommand(args[0])
	if c == nil || len(args) > 1 {
		return usagef("help takes one command name (tree, trace, record, watch, story, report, pid or version), got %q", args)
	}
	printHelp(stdout, c)
	return nil
}

// parseInterspersed parses flags that may come before, between or after the
// positional arguments, as GNU tools accept them, and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// filterFlags are flags whose empty value would select everything: given
// empty (`--pidns "$(pidof -s nginx)"` with no nginx), they are an error.
var filterFlags = []string{"pidns", "container", "pod", "netns", "comm", "events", "pid", "from", "at", "output", "columns", "host", "metrics", "rotate-size", "since", "until"}

// checkGiven refuses flags given with a value that means nothing.
func (o *options) checkGiven() error {
	values := map[string]string{"pidns": o.pidns, "container": o.container, "pod": o.pod, "netns": o.netns, "columns": o.columns, "comm": o.comm,
		"events": o.events, "pid": o.pid, "from": o.from.nonEmpty(), "at": o.at, "output": o.output, "host": o.host, "metrics": o.metrics, "rotate-size": o.rotateSize,
		"since": o.since, "until": o.until}
	for _, name := range filterFlags {
		if o.given[name] && strings.TrimSpace(values[name]) == "" {
			return usagef("--%s is empty (did the command that gives it find nothing?)", name)
		}
	}
	if o.metrics != "" {
		if _, err := metrics.ListenAddr(o.metrics); err != nil {
			return usagef("--metrics: %v", err)
		}
	}
	if len(o.host) > maxHostLen {
		return usagef("--host is longer than a host name's %d bytes", maxHostLen)
	}
	if o.ancestors < 0 || o.ancestors > events.MaxAncestors {
		return usagef("--ancestors must be from 0 (none) to %d", events.MaxAncestors)
	}
	if o.given["duration"] && o.duration <= 0 {
		return usagef("--duration must be positive, such as 30s or 5m (leave it out to run until Ctrl-C)")
	}
	if o.given["flush"] {
		if err := loader.CheckFlushInterval(o.flush); err != nil {
			return usagef("--flush: %v", err)
		}
	}
	return nil
}

// checkOutput validates -o/--output and --columns of <pid> and tree.
func (o *options) checkOutput() error {
	if o.output != "text" && o.output != "wide" && o.output != "json" {
		return usagef("bad --output %q (want text, wide or json)", o.output)
	}
	if o.columns != "" && o.output == "json" {
		return usagef("--columns is for text output: JSON always carries everything")
	}
	_, err := describe.ParseColumns(o.columns, o.output == "wide")
	return err
}

// flagError rewrites the flag package's errors with the spelling the user
// typed: --bogus, not -bogus.
func flagError(err error, args []string) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return usagef("unknown flag %s", typedFlag(name, args))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return usagef("flag %s needs a value", typedFlag(name, args))
	}
	// The errors about a value quote it, then name the flag: `invalid
	// value "x" for flag -name: why`, `invalid boolean value "x" for -name:
	// why`. The value is skipped as the quoted string it is, so that what
	// it holds is never taken for the flag's name.
	for _, f := range [...]struct{ prefix, before string }{
		{"invalid value ", " for flag -"},
		{"invalid boolean value ", " for -"},
	} {
		quoted, ok := strings.CutPrefix(msg, f.prefix)
		if !ok {
			continue
		}
		value, err := strconv.QuotedPrefix(quoted)
		if err != nil {
			break
		}
		named, ok := strings.CutPrefix(quoted[len(value):], f.before)
		if name, why, ok2 := strings.Cut(named, ": "); ok && ok2 {
			return usagef("%s%s%s%s: %s", f.prefix, value, f.before[:len(f.before)-1], typedFlag(name, args), why)
		}
	}
	return usageError{Msg: msg}
}

// typedFlag returns flag name as it stands in args (-o, --pidns, -pidns),
// or in its long form when it is not there.
func typedFlag(name string, args []string) string {
	for _, a := range args {
		typed, _, _ := strings.Cut(a, "=")
		if typed == "-"+name || typed == "--"+name {
			return typed
		}
	}
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// printHelp prints one command's help from its flag definitions.
func printHelp(w io.Writer, c *command) {
	fs := newFlagSet(c.name)
	c.flags(fs, &options{})
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.synopsis, c.about)
	if flagCount(fs) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, fs)
	}
	if c.examples != "" {
		fmt.Fprintf(w, "\nExamples:\n%s", c.examples)
	}
	fmt.Fprint(w, footer)
}

func flagCount(fs *flag.FlagSet) int {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n
}

// printFlags prints one line per flag: its names, its value's name, what
// it does and its default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	var shorts []string
	for short, long := range flagAliases {
		if fs.Lookup(short) != nil && fs.Lookup(long) != nil {
			shorts = append(shorts, short)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(shorts, f.Name) {
			return
		}
		value, usage := flag.UnquoteUsage(f)
		names := "--" + f.Name
		for _, s := range shorts {
			if flagAliases[s] == f.Name {
				names = "-" + s + ", " + names
			}
		}
		if value != "" && value != "value" {
			names += " " + value
		}
		switch f.DefValue {
		case "", "false", "0", "0s":
		default:
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(tw, "  %s\t%s\n", names, usage)
	})
	tw.Flush()
}

const footer = `
Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 not found.
Live answers need root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF.
Documentation: docs/ in the nspidtrace repository.
`

// printOverview is `nspidtrace --help`.
func printOverview(w io.Writer) {
	fmt.Fprint(w, "nspidtrace shows processes at every pid-namespace level, live from the kernel:\n"+
		"the same process is PID 12573 on the host, 52 in its container and 1 in a nested one.\n\nUsage:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.synopsis, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'nspidtrace help COMMAND' or 'nspidtrace COMMAND --help' for a command's flags\n"+
		"('nspidtrace help pid' for <pid>). Flags may stand before or after the command.\n\nExamples:\n")
	for _, c := range commands {
		fmt.Fprint(w, c.examples)
	}
	fmt.Fprint(w, footer)
}

// fileList is a flag that may be given more than once.
type fileList []string

func (l *fileList) String() string { return strings.Join(*l, ",") }

func (l *fileList) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// nonEmpty is "" when a value given is empty, for checkGiven.
func (l fileList) nonEmpty() string {
	for _, v := range l {
		if strings.TrimSpace(v) == "" {
			return ""
		}
	}
	return "given"
}

// Values lets dispatch move each value given before the command to it.
func (l *fileList) Values() []string { return *l }
