// Package fault sorts errors by what the user does about them, so that the
// packages below the command line can say it and the command line alone
// turns it into an exit code (docs/cli.md): a usage error, fixed by
// changing the command line (exit 2), or something the command names that
// does not exist (exit 3). Any other error is a failure (exit 1).
package fault

import "fmt"

// Usage is an error in how nspidtrace was called: a bad flag, value or
// file, flags that do not go together.
type Usage struct{ Msg string }

func (e Usage) Error() string { return e.Msg }

// Usagef formats a Usage error.
func Usagef(format string, args ...any) error { return Usage{fmt.Sprintf(format, args...)} }

// NotFound is a process, namespace or container that does not exist.
type NotFound struct{ Err error }

func (e NotFound) Error() string { return e.Err.Error() }
func (e NotFound) Unwrap() error { return e.Err }
