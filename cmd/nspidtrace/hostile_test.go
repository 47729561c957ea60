package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestHostileStringsAreEscaped runs a process whose argv and comm carry
// terminal escapes, a bidi override and invalid UTF-8, as any process may:
// text output shows them escaped, JSON carries them exactly.
func TestHostileStringsAreEscaped(t *testing.T) {
	testenv.Require(t)
	const argv0 = "evil\x1b]0;pwned\x07\x1b[2J\u202egnp.exe\xff"
	const comm = "\x1b[31mRED\u202e"
	// The shell renames itself (only a process's own threads may), then waits.
	cmd := exec.Command("/bin/sh", "-c", `printf '\033[31mRED\342\200\256' > /proc/$$/comm; sleep 30; :`)
	cmd.Args[0] = argv0
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, _ := os.ReadFile("/proc/" + pid + "/comm"); string(got) == comm+"\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell did not rename itself")
		}
	}

	for _, args := range [][]string{{pid}, {"tree", pid}} {
		stdout, stderr, code := runBinary(t, args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d: %s", args, code, stderr)
		}
		if strings.ContainsAny(stdout, "\x1b\x07\u202e\xff") {
			t.Errorf("%q wrote raw control bytes to the terminal: %q", args, stdout)
		}
		if !strings.Contains(stdout, `\x1b[31mRED\u202e`) {
			t.Errorf("%q: the comm is not shown escaped: %q", args, stdout)
		}
		if args[0] == pid && !strings.Contains(stdout, `evil\x1b]0;pwned\x07\x1b[2J\u202egnp.exe\xff -c printf`) {
			t.Errorf("%q: argv is not shown escaped: %q", args, stdout)
		}
	}

	stdout, _, _ := runBinary(t, "-o", "json", pid)
	var l line
	if err := json.Unmarshal([]byte(stdout), &l); err != nil {
		t.Fatal(err)
	}
	// JSON keeps the true bytes; invalid UTF-8 becomes U+FFFD, as documented.
	if l.Comm != comm || len(l.Args) != 3 || l.Args[0] != strings.ToValidUTF8(argv0, "\uFFFD") {
		t.Errorf("JSON comm %q args %q, want %q and %q", l.Comm, l.Args, comm, argv0)
	}
}
