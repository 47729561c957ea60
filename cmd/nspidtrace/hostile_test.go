package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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

// TestHostileContainer: what a container's users control (its Kubernetes
// labels, its /etc/passwd) is shown escaped, and its /etc/passwd is read
// inside its root: a link out of it, a FIFO and a 10 GB file cost nothing
// and leak nothing.
func TestHostileContainer(t *testing.T) {
	testenv.Require(t)
	testenv.Docker(t)
	id := testenv.DockerRun(t, []string{
		"--label", "io.kubernetes.pod.name=web\x1b[2J\u202e",
		"--label", "io.kubernetes.pod.namespace=shop\x1b]0;pwned\x07",
		"--label", "io.kubernetes.container.name=app\x1b[31m",
	}, "sleep", "3600")
	host := strconv.Itoa(testenv.DockerPID(t, id))
	// The container's /etc/passwd, changed from the host: docker exec
	// itself would hang on the FIFO (runc reads the file to find users).
	passwd := "/proc/" + host + "/root/etc/passwd"
	replace := func(make func() error) {
		t.Helper()
		os.Remove(passwd)
		if err := make(); err != nil {
			t.Fatal(err)
		}
	}
	show := func(what string) string {
		t.Helper()
		start := time.Now()
		stdout, stderr, code := runBinary(t, "--container", id, "1")
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", what, code, stderr)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", what, d)
		}
		if strings.ContainsAny(stdout, "\x1b\x07\u202e") {
			t.Errorf("%s: raw control bytes on the terminal: %q", what, stdout)
		}
		return stdout
	}

	replace(func() error { return os.WriteFile(passwd, []byte("r\x1b]0;pwned\x07oot:x:0:0::/:/bin/sh\n"), 0o644) })
	out := show("escapes in labels and passwd")
	for _, want := range []string{`container app\x1b[31m`, `pod shop\x1b]0;pwned\x07/web\x1b[2J\u202e`, `user   uid 0 (root; r\x1b]0;pwned\x07oot in its root)`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "LEVEL") || !strings.Contains(out, host) {
		t.Errorf("the container's init is not shown:\n%s", out)
	}

	// A link to a file that exists on the host only: read inside the
	// container's root, it names nothing.
	leak := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(leak, []byte("leaked:x:0:0::/:/bin/sh\n"), 0o644)
	replace(func() error { return os.Symlink(leak, passwd) })
	if out := show("a link out of the root"); strings.Contains(out, "leaked") || !strings.Contains(out, "user   uid 0 (root)\n") {
		t.Errorf("a link out of the container's root was followed:\n%s", out)
	}
	replace(func() error { return unix.Mkfifo(passwd, 0o644) })
	if out := show("a FIFO"); !strings.Contains(out, "user   uid 0 (root)\n") {
		t.Errorf("with a FIFO for /etc/passwd:\n%s", out)
	}
	replace(func() error { return os.WriteFile(passwd, nil, 0o644) })
	if err := os.Truncate(passwd, 10<<30); err != nil {
		t.Fatal(err)
	}
	if out := show("a 10 GB file"); !strings.Contains(out, "user   uid 0 (root)\n") {
		t.Errorf("with a 10 GB /etc/passwd:\n%s", out)
	}
}

// TestUserNamespaceIDs: a process in a user namespace of its own is shown
// with its host ID and the ID it has inside, as its uid_map maps them.
func TestUserNamespaceIDs(t *testing.T) {
	testenv.Require(t)
	cmd := exec.Command("unshare", "--user", "--map-user=4321", "sh", "-c", "sleep 30; :")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		// Until unshare has made the namespace, the map is the host's.
		m, _ := os.ReadFile("/proc/" + pid + "/uid_map")
		if f := strings.Fields(string(m)); len(f) == 3 && f[0] == "4321" && f[1] == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uid_map is %q", m)
		}
	}
	stdout, stderr, code := runBinary(t, pid)
	if want := "user   uid 0 (root) on the host; 4321 in its user namespace\n"; code != exitOK || !strings.Contains(stdout, want) {
		t.Errorf("exit %d, want %q in:\n%s%s", code, want, stdout, stderr)
	}
}
