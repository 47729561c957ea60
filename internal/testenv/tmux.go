package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tmux is a terminal program under test: a command in a detached tmux
// session of its own server, driven by keys and read by capture-pane.
type Tmux struct {
	t      testing.TB
	socket string
}

// StartTmux runs shell command in a width×height terminal; the server is
// killed when the test ends. tmux is required: its absence fails the test.
func StartTmux(t testing.TB, width, height int, command string) *Tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux drives the terminal tests and is not installed (make deps): %v", err)
	}
	tm := &Tmux{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	tm.run("-f", "/dev/null", "new-session", "-d", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height), command)
	// The window keeps the size asked for, whatever clients attach.
	tm.run("set-option", "-g", "window-size", "manual")
	t.Cleanup(func() { exec.Command("tmux", "-S", tm.socket, "kill-server").Run() })
	return tm
}

func (tm *Tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.socket}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Keys sends tmux key names: "q", "Enter", "Left", "C-c".
func (tm *Tmux) Keys(keys ...string) {
	tm.t.Helper()
	tm.run(append([]string{"send-keys", "-t", "0"}, keys...)...)
}

// Type sends text literally.
func (tm *Tmux) Type(text string) {
	tm.t.Helper()
	tm.run("send-keys", "-t", "0", "-l", text)
}

// Screen returns what the terminal shows, one string per line.
func (tm *Tmux) Screen() []string {
	tm.t.Helper()
	return strings.Split(strings.TrimSuffix(tm.run("capture-pane", "-p", "-t", "0"), "\n"), "\n")
}

// Resize makes the terminal width×height.
func (tm *Tmux) Resize(width, height int) {
	tm.t.Helper()
	tm.run("resize-window", "-t", "0", "-x", strconv.Itoa(width), "-y", strconv.Itoa(height))
}

// PanePID is the PID of the pane's command.
func (tm *Tmux) PanePID() int {
	tm.t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(tm.run("display-message", "-p", "-t", "0", "#{pane_pid}")))
	if err != nil {
		tm.t.Fatal(err)
	}
	return pid
}

// WaitFor polls the screen until ok accepts it, and fails the test after
// timeout with the last screen.
func (tm *Tmux) WaitFor(what string, timeout time.Duration, ok func(screen []string) bool) []string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		screen := tm.Screen()
		if ok(screen) {
			return screen
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("after %v the terminal does not show %s:\n%s", timeout, what, strings.Join(screen, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Contains reports whether a line of screen contains s.
func Contains(screen []string, s string) bool {
	for _, l := range screen {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// WaitFile waits for path to exist with content, and returns it.
func WaitFile(t testing.TB, path string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(path)
		if err == nil && len(data) > 0 {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("%s did not appear within %v: %v", path, timeout, err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
