// Package testenv holds what privileged tests share: the gate that decides
// whether they run.
package testenv

import (
	"os"
	"testing"
)

// Require skips t when it cannot load BPF programs (not root) and the run is
// by hand, and fails it when CI is set: in CI, privileged tests must run.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("privileged test: CI is set but the tests do not run as root")
	}
	t.Skip("privileged test: needs root (runs in CI)")
}
