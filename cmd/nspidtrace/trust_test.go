package main

// A command line a user can trust: each test is one thing a new user hit.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// wantError runs nspidtrace and checks it fails with code and one line
// that mentions what is wrong.
func wantError(t *testing.T, code int, mentions string, args ...string) {
	t.Helper()
	stdout, stderr, got := runBinary(t, args...)
	first, _, _ := strings.Cut(stderr, "\n")
	if got != code || !strings.HasPrefix(first, "nspidtrace: ") || !strings.Contains(first, mentions) {
		t.Errorf("nspidtrace %q: exit %d, first line %q; want exit %d mentioning %q", args, got, first, code, mentions)
	}
	if stdout != "" || strings.Contains(stderr, "goroutine ") {
		t.Errorf("nspidtrace %q: stdout %q, stderr %q", args, stdout, stderr)
	}
}

func TestSubcommandHelp(t *testing.T) {
	for _, tt := range []struct {
		args     []string
		has, not []string
	}{
		{[]string{"trace", "--help"}, []string{"Usage: nspidtrace [flags] trace", "--snapshot", "--events LIST", "--pidns REF"}, []string{"--force", "-o, --output"}},
		{[]string{"help", "trace"}, []string{"Usage: nspidtrace [flags] trace"}, nil},
		{[]string{"record", "-h"}, []string{"Usage: nspidtrace [flags] record -o FILE", "--force", "-o, --output FILE"}, []string{"--snapshot", "--pidns"}},
		{[]string{"tree", "--help"}, []string{"Usage: nspidtrace [flags] tree [<pid>]", "-o, --output FORMAT", "(default text)"}, []string{"--snapshot"}},
		{[]string{"12", "--help"}, []string{"Usage: nspidtrace [flags] <pid>", "--container NAME"}, []string{"--threads"}},
		{[]string{"help", "pid"}, []string{"Usage: nspidtrace [flags] <pid>"}, nil},
		{[]string{"version", "--help"}, []string{"Usage: nspidtrace version"}, nil},
	} {
		stdout, stderr, code := runBinary(t, tt.args...)
		if code != exitOK {
			t.Errorf("%q: exit %d: %s", tt.args, code, stderr)
		}
		for _, s := range tt.has {
			if !strings.Contains(stdout, s) {
				t.Errorf("%q: help lacks %q:\n%s", tt.args, s, stdout)
			}
		}
		// Every flag has a one-line usage: each line of the flag list is
		// names, then what the flag does.
		_, flags, _ := strings.Cut(stdout, "\nFlags:\n")
		flags, _, _ = strings.Cut(flags, "\n\n")
		for _, s := range tt.not {
			if strings.Contains(flags, "  "+s+" ") {
				t.Errorf("%q: help lists %q, which is not this command's flag:\n%s", tt.args, s, flags)
			}
		}
		for _, l := range strings.Split(flags, "\n") {
			names, usage, ok := strings.Cut(strings.TrimSpace(l), "  ")
			if l != "" && (!ok || !strings.HasPrefix(names, "-") || strings.TrimSpace(usage) == "") {
				t.Errorf("%q: flag line %q has no usage", tt.args, l)
			}
		}
	}
}

func TestVersionForms(t *testing.T) {
	v1, _, c1 := runBinary(t, "version")
	v2, _, c2 := runBinary(t, "--version")
	if c1 != exitOK || c2 != exitOK || v1 != v2 || !strings.HasPrefix(v1, "nspidtrace ") {
		t.Errorf("version %q (exit %d) and --version %q (exit %d) differ", v1, c1, v2, c2)
	}
	wantError(t, exitUsage, "no arguments", "version", "extra")
}

func TestFlagErrorsAsTyped(t *testing.T) {
	wantError(t, exitUsage, "unknown flag --bogus", "trace", "--bogus")
	wantError(t, exitUsage, "unknown flag --bogus", "--bogus", "tree")
	wantError(t, exitUsage, "unknown flag -bogus", "tree", "-bogus")
	wantError(t, exitUsage, "--pid needs a value", "trace", "--pid")
	wantError(t, exitUsage, "--duration", "trace", "--duration=soon")
	wantError(t, exitUsage, `invalid value "soon" for flag --duration: parse error`, "trace", "--duration=soon")
	wantError(t, exitUsage, `invalid value "soon" for flag -duration: parse error`, "trace", "-duration", "soon")
	wantError(t, exitUsage, `invalid boolean value "maybe" for --ancestors: parse error`, "--ancestors=maybe", "1")
	// What the value holds is not taken for the flag's name.
	wantError(t, exitUsage, `invalid value "x\" for flag -pid: y" for flag --duration`, "trace", `--duration=x" for flag -pid: y`)
	wantError(t, exitUsage, "--pidns does not go with record", "--pidns", "1", "record", "-o", "x")
}

func TestEmptyFiltersAreErrors(t *testing.T) {
	for _, flag := range []string{"--pidns", "--container", "--comm", "--events", "--pid"} {
		wantError(t, exitUsage, flag+" is empty", "trace", flag, "")
	}
	// `--pidns "$(pidof -s nginx)"` with no nginx running.
	wantError(t, exitUsage, "--pidns is empty", "tree", "--pidns", "")
	wantError(t, exitUsage, "--container is empty", "1", "--container", " ")
	for _, d := range []string{"0", "0s", "-5s"} {
		wantError(t, exitUsage, "--duration must be positive", "trace", "--duration", d)
		wantError(t, exitUsage, "--duration must be positive", "record", "-o", filepath.Join(t.TempDir(), "r"), "--duration", d)
	}
}

func TestDeadFiltersAreNotFound(t *testing.T) {
	testenv.Require(t)
	wantError(t, exitNotFound, "no such file", "trace", "--pidns", "/nonexistent/ns")
	wantError(t, exitNotFound, "no such process", "trace", "--pidns", "4194304")
	// An inode no pid namespace has: tracing it would print nothing, forever.
	wantError(t, exitNotFound, "no live process is in pid namespace pid:[4026599999]", "trace", "--pidns", "pid:[4026599999]")
	wantError(t, exitNotFound, "no live process is in pid namespace", "tree", "--pidns", "4026599999")
}

func TestPidnsWithContainerIsOneRule(t *testing.T) {
	const msg = "give --pidns or --container, not both"
	wantError(t, exitUsage, msg, "--pidns", "1", "--container", "abc", "1")
	wantError(t, exitUsage, msg, "tree", "--pidns", "1", "--container", "abc")
	wantError(t, exitUsage, msg, "trace", "--pidns", "1", "--container", "abc")
}

// TestRecordWritesOnlyItsOwnFiles: a path another user prepared is
// refused, at once, and left as it was: a FIFO (whose reader would get the
// recording, and whose open would block without one), another user's file
// (who would keep owning, and reading, what it holds), a hard link.
func TestRecordWritesOnlyItsOwnFiles(t *testing.T) {
	testenv.Require(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	wantError(t, exitUsage, "not a regular file", "record", "-o", fifo, "--duration", "1m")
	wantError(t, exitUsage, "not a regular file", "record", "-o", fifo, "--force", "--duration", "1m")
	if d := time.Since(begin); d > 20*time.Second {
		t.Errorf("refusing a FIFO took %v", d)
	}
	theirs := filepath.Join(dir, "theirs.ndjson")
	os.WriteFile(theirs, []byte("theirs\n"), 0o644)
	os.Chown(theirs, 65534, 65534)
	wantError(t, exitUsage, "belongs to uid 65534", "record", "-o", theirs, "--force", "--duration", "1s")
	mine := filepath.Join(dir, "mine.ndjson")
	os.WriteFile(mine, []byte("mine\n"), 0o600)
	os.Link(mine, filepath.Join(dir, "another-name"))
	wantError(t, exitUsage, "hard links", "record", "-o", mine, "--force", "--duration", "1s")
	for path, want := range map[string]string{theirs: "theirs\n", mine: "mine\n"} {
		if data, _ := os.ReadFile(path); string(data) != want {
			t.Errorf("%s was changed: %q", path, data)
		}
	}
}

func TestRecordNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "incident.ndjson")
	os.WriteFile(existing, []byte("last week's incident\n"), 0o600)
	wantError(t, exitUsage, "the file exists (give --force", "record", "-o", existing, "--duration", "1s")
	link := filepath.Join(dir, "link")
	os.Symlink(filepath.Join(dir, "elsewhere"), link) // dangling
	wantError(t, exitUsage, "symbolic link", "record", "-o", link, "--duration", "1s")
	os.Symlink(existing, link+"2")
	wantError(t, exitUsage, "symbolic link", "record", "-o", link+"2", "--force", "--duration", "1s")
	if data, _ := os.ReadFile(existing); string(data) != "last week's incident\n" {
		t.Errorf("the existing recording was changed: %q", data)
	}
	if _, err := os.Lstat(filepath.Join(dir, "elsewhere")); err == nil {
		t.Error("record followed a dangling symbolic link")
	}

	testenv.Require(t)
	os.Chmod(existing, 0o644)
	os.Chmod(dir, 0o777) // others may replace what is in it
	_, stderr, code := runBinary(t, "record", "-o", existing, "--force", "--duration", "1s")
	if code != exitOK {
		t.Fatalf("record --force: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "others may write to this directory") {
		t.Errorf("record into a world-writable directory did not warn: %s", stderr)
	}
	data, _ := os.ReadFile(existing)
	st, _ := os.Stat(existing)
	if !strings.HasPrefix(string(data), `{"type":"header"`) || st.Mode().Perm() != 0o600 {
		t.Errorf("record --force: mode %v, file starts %.40q", st.Mode().Perm(), data)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, `"type":"end"`) {
		t.Errorf("the recording's last line is %q, want its end line", last)
	}
}

// handRecording is a recording from 07:39:05 to 07:39:15: init (1) and
// a shell (7) in the snapshot, a child (8) of the shell that exits with 2.
const handRecording = `{"type":"header","format":"nspidtrace-record","version":1,"hostname":"h","kernel":"k","boot_id":"b","start":"2026-11-23T07:39:05Z"}
{"time":"2026-11-23T07:39:05.1Z","type":"proc","pid":1,"tid":1,"ppid":0,"nspid":[1],"pidns":[4026531836],"nsppid":[0],"comm":"init","args":["init"],"ns":{},"uid":0,"gid":0}
{"time":"2026-11-23T07:39:05.1Z","type":"proc","pid":7,"tid":7,"ppid":1,"nspid":[7],"pidns":[4026531836],"nsppid":[1],"comm":"sh","args":["sh"],"ns":{},"uid":0,"gid":0}
{"time":"2026-11-23T07:39:06Z","type":"fork","pid":8,"tid":8,"ppid":7,"nspid":[8],"pidns":[4026531836],"nsppid":[7],"comm":"sh","ns":{},"uid":0,"gid":0}
{"time":"2026-11-23T07:39:07Z","type":"exit","pid":8,"tid":8,"ppid":7,"nspid":[8],"pidns":[4026531836],"nsppid":[7],"comm":"sh","ns":{},"uid":0,"gid":0,"exit_code":2,"signal":0,"core_dumped":false,"reaper":1}
{"time":"2026-11-23T07:39:15Z","type":"end"}
`

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAtOutsideTheRecording(t *testing.T) {
	rec := writeFile(t, "rec.ndjson", handRecording)
	const covers = "it covers 2026-11-23T07:39:05Z to 2026-11-23T07:39:15Z"
	wantError(t, exitNotFound, "before the recording's start: "+covers, "--from", rec, "--at", "2026-11-23T07:39:04Z", "7")
	wantError(t, exitNotFound, "after the recording's end: "+covers, "--from", rec, "--at", "2026-11-23T07:39:16Z", "tree")
	wantError(t, exitNotFound, "after the recording's end", "--from", rec, "--at", "+11s", "7")
	wantError(t, exitNotFound, "after the recording's end", "--from", rec, "--at", "+11s", "trace")
	// A time without a zone is refused with an example, in every form.
	for _, at := range []string{"2026-11-23T07:39:10", "2026-11-23 07:39:10"} {
		wantError(t, exitUsage, "no time zone: add Z for UTC (2026-11-23T07:39:10Z)", "--from", rec, "--at", at, "7")
	}
	// Within the range, including its very end (quiet after the last event).
	for _, at := range []string{"2026-11-23T07:39:05Z", "+8s", "2026-11-23T08:39:15+01:00"} {
		if _, stderr, code := runBinary(t, "--from", rec, "--at", at, "7"); code != exitOK {
			t.Errorf("--at %s: exit %d: %s", at, code, stderr)
		}
	}
}

func TestProcLinesCarryTheirTime(t *testing.T) {
	rec := writeFile(t, "rec.ndjson", handRecording)
	stdout, stderr, code := runBinary(t, "--from", rec, "--at", "+3s", "tree", "-o", "json")
	if code != exitOK || !strings.Contains(stdout, `"time":"2026-11-23T07:39:08.000000000Z"`) || strings.Contains(stdout, "1970") {
		t.Errorf("tree -o json at +3s: exit %d, %s %s; want proc lines at the --at instant", code, stdout, stderr)
	}

	testenv.Require(t)
	before := time.Now()
	for _, args := range [][]string{{"tree", "-o", "json"}, {"-o", "json", strconv.Itoa(os.Getpid())}} {
		stdout, stderr, code := runBinary(t, args...)
		if code != exitOK {
			t.Fatalf("%q: exit %d: %s", args, code, stderr)
		}
		sc := bufio.NewScanner(strings.NewReader(stdout))
		for sc.Scan() {
			var l line
			json.Unmarshal(sc.Bytes(), &l)
			when, err := time.Parse(time.RFC3339Nano, l.Time)
			if err != nil || when.Before(before.Add(-time.Second)) || when.After(time.Now().Add(time.Second)) {
				t.Fatalf("%q: proc line time %q, want the snapshot's (about %s)", args, l.Time, before.UTC())
			}
		}
	}
}

func TestTraceFromKeepsOnlyTheAskedTypes(t *testing.T) {
	rec := writeFile(t, "rec.ndjson", handRecording)
	stdout, stderr, code := runBinary(t, "--from", rec, "trace", "--events", "exit")
	if code != exitOK || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"type":"exit"`) {
		t.Errorf("trace --from --events exit: exit %d, %q %s; want the one exit line", code, stdout, stderr)
	}
	stdout, _, _ = runBinary(t, "--from", rec, "trace", "--snapshot", "--events", "fork")
	if strings.Count(stdout, `"type":"proc"`) != 2 || strings.Count(stdout, `"type":"fork"`) != 1 || strings.Count(stdout, "\n") != 3 {
		t.Errorf("trace --from --snapshot --events fork: %q; want 2 proc lines and the fork", stdout)
	}
}

func TestFromAFeedWithoutSnapshot(t *testing.T) {
	lines := strings.SplitAfter(handRecording, "\n")
	feed := writeFile(t, "feed.ndjson", lines[3]+lines[4]) // plain trace: a fork and an exit
	_, stderr, code := runBinary(t, "--from", feed, "--at", "2026-11-23T07:39:06.5Z", "tree")
	if code != exitOK || !strings.Contains(stderr, "processes alive before its first line are unknown") {
		t.Errorf("tree --from a plain trace: exit %d, %s; want a warning that the snapshot is missing", code, stderr)
	}
	wantError(t, exitUsage, "the file is empty", "--from", writeFile(t, "empty", ""), "tree")
}

func TestUnprivilegedQueriesSayWhatIsMissing(t *testing.T) {
	testenv.Require(t) // root is needed to drop to another user
	for _, args := range [][]string{{"tree", "--container", "abcdef"}, {"--pidns", strconv.Itoa(os.Getpid()), "tree"}, {"record", "-o", "/tmp/never"}} {
		cmd := exec.Command(binPath, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(out), "root") {
			t.Errorf("%q as nobody: exit %d, %q; want exit 1 naming root", args, code, out)
		}
	}
}

// startThreads runs a helper process with extra threads and returns its
// PID and one of its thread IDs.
func startThreads(t *testing.T) (pid, tid int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "NSPIDTRACE_TEST_HELPER=threads-hold")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	bufio.NewReader(stdout).ReadString('\n') // "ready"
	pid = cmd.Process.Pid
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		if n, _ := strconv.Atoi(task.Name()); n != pid {
			return pid, n
		}
	}
	t.Fatal("the helper has no thread but its leader")
	return 0, 0
}

func TestThreadIDNamesItsProcessEverywhere(t *testing.T) {
	testenv.Require(t)
	pid, tid := startThreads(t)
	if l := procJSON(t, strconv.Itoa(tid)); l.PID != uint32(pid) {
		t.Errorf("nspidtrace TID: process %d, want %d", l.PID, pid)
	}
	stdout, stderr, code := runBinary(t, "tree", strconv.Itoa(tid))
	if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("(%d)", pid)) {
		t.Errorf("tree TID: exit %d, %q %s; want the process %d's subtree", code, stdout, stderr, pid)
	}
	if _, stderr, code := runBinary(t, "trace", "--pid", strconv.Itoa(tid), "--duration", "1s"); code != exitOK {
		t.Errorf("trace --pid TID: exit %d: %s", code, stderr)
	}
}
