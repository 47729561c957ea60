package main

// Recordings someone else wrote: every reader ends, soon, with a one-line
// error or a bounded, escaped answer.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// capped keeps the first bytes written to it and counts the rest.
type capped struct {
	buf   bytes.Buffer
	total int
}

func (c *capped) Write(p []byte) (int, error) {
	c.total += len(p)
	if room := 64<<10 - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// runBounded runs nspidtrace with args and fails t when it runs longer than
// limit (a hang) or writes more than most bytes (endless output).
func runBounded(t *testing.T, limit time.Duration, most int, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var out, errOut capped
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("nspidtrace %q did not end within %v", args, limit)
	case err != nil && !errors.As(err, &exitErr):
		t.Fatal(err)
	case out.total > most:
		t.Errorf("nspidtrace %q wrote %d bytes, want at most %d", args, out.total, most)
	}
	if strings.Contains(errOut.buf.String(), "goroutine ") || strings.Contains(errOut.buf.String(), "panic") {
		t.Errorf("nspidtrace %q crashed: %s", args, errOut.buf.String())
	}
	return out.buf.String(), errOut.buf.String(), cmd.ProcessState.ExitCode()
}

func TestHostileRecordings(t *testing.T) {
	const fast = 10 * time.Second // each takes well under a second alone
	cycle := testenv.WriteRecording(t, "cycle.ndjson", []*events.Event{
		testenv.HostProc(1, 0, nil), testenv.HostProc(100, 200, nil), testenv.HostProc(200, 100, nil), testenv.HostProc(300, 200, nil),
	}, "")
	t.Run("parent cycle", func(t *testing.T) {
		out, _, code := runBounded(t, fast, 4096, "--from", cycle, "tree")
		if code != exitOK || !strings.Contains(out, "p(100) [parent 200 not linked") || !strings.Contains(out, "└─p(200)") || !strings.Contains(out, "p(300)") {
			t.Errorf("tree: exit %d\n%s", code, out)
		}
		out, _, code = runBounded(t, fast, 4096, "--from", cycle, "tree", "-o", "json", "100")
		if code != exitOK || strings.Count(out, "\n") != 3 {
			t.Errorf("tree -o json 100: exit %d, want 3 lines\n%s", code, out)
		}
		for _, args := range [][]string{{"tree", "100"}, {"--ancestors", "200"}, {"--ancestors", "100", "-o", "json"}} {
			if _, stderr, code := runBounded(t, fast, 4096, append([]string{"--from", cycle}, args...)...); code != exitOK {
				t.Errorf("%v: exit %d %s", args, code, stderr)
			}
		}
	})
	t.Run("deep chain", func(t *testing.T) {
		evs := make([]*events.Event, 100_000)
		for i := range evs {
			evs[i] = testenv.HostProc(uint32(i+1), uint32(i), nil)
		}
		deep := testenv.WriteRecording(t, "deep.ndjson", evs, "")
		// 100,000 lines of at most 100 levels' indent and a label.
		out, _, code := runBounded(t, 30*time.Second, 100_000*300, "--from", deep, "tree")
		if code != exitOK || !strings.HasPrefix(out, "p(1)\n└─p(2)\n") {
			t.Errorf("exit %d, starts %.100q", code, out)
		}
	})
	t.Run("nesting", func(t *testing.T) {
		path := testenv.WriteRecording(t, "nest.ndjson", []*events.Event{testenv.HostProc(1, 0, nil)},
			`{"time":"2026-11-23T07:39:06Z","type":"exec","x":`+strings.Repeat("[", 10_000_000)+"\n")
		_, stderr, code := runBounded(t, fast, 0, "--from", path, "tree")
		if code != exitFailure || !strings.Contains(stderr, "line 3") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
	t.Run("raw escapes in a string", func(t *testing.T) {
		line := `{"time":"2026-11-23T07:39:06Z","type":"exec","pid":1,"nspid":[1],"pidns":[4026531836],"nsppid":[0],"comm":"` +
			"\x1b]0;pwned\x07\x1b[2J" + `"}` + "\n"
		path := testenv.WriteRecording(t, "esc.ndjson", []*events.Event{testenv.HostProc(1, 0, nil)}, line)
		out, stderr, code := runBounded(t, fast, 1<<20, "--from", path, "trace")
		if code != exitFailure || !strings.Contains(stderr, "line 3") || strings.ContainsAny(out+stderr, "\x1b\x07") {
			t.Errorf("exit %d: %q %q", code, out, stderr)
		}
	})
	t.Run("invalid UTF-8 printed", func(t *testing.T) {
		line := `{"time":"2026-11-23T07:39:06Z","type":"exec","pid":1,"nspid":[1],"pidns":[4026531836],"nsppid":[0],` + "\t" +
			`"comm":"` + "\x9b2J" + `","args":["` + strings.Repeat("\xff", 400) + `","` + strings.Repeat("\xff", 400) + `","x"]}` + "\n"
		path := testenv.WriteRecording(t, "utf8.ndjson", []*events.Event{testenv.HostProc(1, 0, nil)}, line)
		out, stderr, code := runBounded(t, fast, 1<<20, "--from", path, "trace")
		if code != exitOK || strings.Contains(out, "\x9b") || strings.Contains(out, "\t") || !strings.Contains(out, `"comm":"�2J"`) {
			t.Errorf("trace: exit %d: %q %s", code, out, stderr)
		}
		if _, stderr, code := runBounded(t, fast, 1<<20, "--from", path, "tree", "-a"); code != exitOK {
			t.Errorf("tree: exit %d %s", code, stderr)
		}
	})
	t.Run("10 GB line", func(t *testing.T) {
		path := testenv.WriteRecording(t, "huge.ndjson", []*events.Event{testenv.HostProc(1, 0, nil)}, "")
		if err := os.Truncate(path, 10<<30); err != nil { // sparse: zeros, no newline
			t.Fatal(err)
		}
		_, stderr, code := runBounded(t, fast, 0, "--from", path, "tree")
		if code != exitFailure || !strings.Contains(stderr, "line 3: longer than") {
			t.Errorf("exit %d: %s", code, stderr)
		}
	})
	t.Run("names with escapes", func(t *testing.T) {
		evil := "do\x1b]0;pwned\x07cker"
		cg := events.NewCgroup(0, "/docker/"+strings.Repeat("ab", 32), &events.Container{ID: strings.Repeat("ab", 32), Name: "web", Runtime: evil})
		path := testenv.WriteRecording(t, "name\x1b[2J.ndjson", []*events.Event{testenv.HostProc(1, 0, cg)}, "")
		_, stderr, code := runBounded(t, fast, 0, "--from", path, "tree", "--container", "nosuch")
		if code != exitNotFound || strings.ContainsAny(stderr, "\x1b\x07") || !strings.Contains(stderr, `do\x1b]0;pwned\x07cker`) {
			t.Errorf("exit %d: %q", code, stderr)
		}
		_, stderr, code = runBounded(t, fast, 0, "--from", filepath.Join(filepath.Dir(path), "no\x1b[2Jsuch"), "tree")
		if code != exitFailure || strings.Contains(stderr, "\x1b") {
			t.Errorf("missing file: exit %d: %q", code, stderr)
		}
	})
	t.Run("FIFO", func(t *testing.T) {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "rec.ndjson")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := runBounded(t, fast, 0, "--from", fifo, "tree"); code != exitUsage || !strings.Contains(stderr, "not a regular file") {
			t.Errorf("--from FIFO: exit %d: %s", code, stderr)
		}
		os.WriteFile(filepath.Join(dir, "a.ndjson"), []byte(`{"type":"header","format":"nspidtrace-record","version":1,"start":"2026-11-23T07:39:05Z"}`+"\n"+
			`{"time":"2026-11-23T07:39:05.1Z","type":"proc","pid":7,"ppid":0,"nspid":[7],"pidns":[4026531836],"nsppid":[0],"comm":"bash"}`+"\n"), 0o600)
		if out, stderr, code := runBounded(t, fast, 4096, "--from", dir, "tree"); code != exitOK || out != "bash(7)\n" {
			t.Errorf("--from DIR holding a FIFO: exit %d: %q %s", code, out, stderr)
		}
	})
	t.Run("ambiguous name", func(t *testing.T) {
		pod := func(id byte, ns, name string) *events.Cgroup {
			full := strings.Repeat(string(id), 64)
			return events.NewCgroup(0, "/kubepods/pod"+string(id)+"/"+full, &events.Container{ID: full, Name: "web", Runtime: "containerd",
				Pod: &events.Pod{Namespace: ns, Name: name}})
		}
		path := testenv.WriteRecording(t, "pods.ndjson", []*events.Event{
			testenv.HostProc(1, 0, nil), testenv.HostProc(10, 1, pod('a', "shop", "web-1")), testenv.HostProc(20, 1, pod('b', "dev", "web-2")),
		}, "")
		for _, args := range [][]string{{"tree", "--container", "web"}, {"trace", "--container", "web"}} {
			_, stderr, code := runBounded(t, fast, 0, append([]string{"--from", path}, args...)...)
			if code != exitUsage || !strings.Contains(stderr, "dev/web-2/web (bbbbbbbbbbbb), shop/web-1/web (aaaaaaaaaaaa)") {
				t.Errorf("%v: exit %d: %s", args, code, stderr)
			}
		}
		out, stderr, code := runBounded(t, fast, 4096, "--from", path, "tree", "--container", "dev/web-2/web")
		if code != exitOK || !strings.Contains(out, "p(20)") || strings.Contains(out, "p(10)") {
			t.Errorf("--container dev/web-2/web: exit %d: %q %s", code, out, stderr)
		}
	})
}

// TestRecordedInvalidArgvReadsBack: any process, an unprivileged one in a
// container included, can exec with argv that is not UTF-8. Each such byte
// is written as U+FFFD (three bytes), so its line holds more argv than a
// process keeps; reading the recording back cuts it, marked, and every
// later reader of the recording still answers.
func TestRecordedInvalidArgvReadsBack(t *testing.T) {
	testenv.Require(t)
	path := filepath.Join(t.TempDir(), "argv.ndjson")
	rec := startRecord(t, path)
	bad := strings.Repeat("\xff", 400)
	poison := exec.Command("/bin/true", bad, bad)
	if err := poison.Run(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // flushed at least every second
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v", err)
	}
	out, stderr, code := runBounded(t, 10*time.Second, 1<<24, "--from", path, "trace", "--events", "exec")
	if code != exitOK || !strings.Contains(out, `"args":["/bin/true","���`) {
		t.Fatalf("trace --from: exit %d %s\n%.2000s", code, stderr, out)
	}
	if _, stderr, code := runBounded(t, 10*time.Second, 1<<24, "--from", path, "tree", "-a"); code != exitOK {
		t.Errorf("tree --from: exit %d %s", code, stderr)
	}
}

// TestFromUserLine: a recorded process's user line gives the IDs the
// recording holds, at every user-namespace level, without names (those
// are the live machine's, not the recording's).
func TestFromUserLine(t *testing.T) {
	plain := testenv.HostProc(7, 1, nil)
	plain.UID, plain.Cred.EUID, plain.Cred.Known, plain.Cred.UserLevels = 33, 33, true, 1
	rootless := testenv.HostProc(8, 1, nil)
	rootless.UID, rootless.Cred.EUID, rootless.Cred.Known = 100000, 100000, true
	rootless.Cred.UserLevels = 2
	rootless.Cred.UserNS = [events.MaxUserLevels]uint32{4026531837, 4026532300}
	rootless.Cred.NSUID = [events.MaxUserLevels]uint32{100000, 0}
	path := testenv.WriteRecording(t, "users.ndjson", []*events.Event{testenv.HostProc(1, 0, nil), plain, rootless}, "")
	for pid, want := range map[string]string{
		"7": "user   uid 33\n",
		"8": "user   uid 100000 on the host; 0 in its user namespace\n",
	} {
		out, stderr, code := runBounded(t, 10*time.Second, 4096, "--from", path, pid, "-o", "wide")
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("--from %s: exit %d %s\n%s; want %q", pid, code, stderr, out, want)
		}
	}
}
