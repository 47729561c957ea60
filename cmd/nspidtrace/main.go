// Command nspidtrace shows processes at every pid-namespace level: the same
// process is PID 12573 on the host, 52 in its container and 1 in a nested one.
//
// See `nspidtrace --help` and ../../README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes (docs/cli.md).
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// usageError is a bad command line: exit 2. The packages below say it
// with the same type.
type usageError = fault.Usage

func usagef(format string, args ...any) error { return fault.Usagef(format, args...) }

// notFoundError is a process, namespace or container that does not exist: exit 3.
type notFoundError = fault.NotFound

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	// With SIGPIPE ignored, a write to a closed stdout fails with EPIPE
	// instead of killing the process, so `| head` ends us cleanly. Ignoring
	// costs nothing at start-up, unlike signal.Notify (see dispatch); and
	// nspidtrace starts no programs that would inherit it.
	signal.Ignore(syscall.SIGPIPE)

	err := dispatch(args, stdout, stderr)
	// A reader that went away (`| head`) is a normal end.
	if err == nil || errors.Is(err, errHelp) || errors.Is(err, syscall.EPIPE) {
		return exitOK
	}
	// Messages name what the user typed, files and what recordings say:
	// none of it may drive the terminal.
	fmt.Fprintf(stderr, "nspidtrace: %s\n", termsafe.Message(err.Error()))
	var uerr usageError
	var nerr notFoundError
	switch {
	case errors.As(err, &uerr):
		fmt.Fprintln(stderr, "Run 'nspidtrace --help' for usage.")
		return exitUsage
	case errors.As(err, &nerr):
		return exitNotFound
	}
	return exitFailure
}

// newLogger builds the one logger of the process: diagnostics on stderr,
// never on stdout.
func newLogger(stderr io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), usagef("bad --log-level %q (want trace, debug, info, warn, error)", level)
	}
	var w io.Writer
	switch format {
	case "console":
		w = zerolog.ConsoleWriter{Out: stderr, TimeFormat: "15:04:05.000", NoColor: !isTerminal(stderr)}
	case "json":
		w = stderr
	default:
		return zerolog.Nop(), usagef("bad --log-format %q (want console or json)", format)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
