package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// seriesFile is one file of a rotated recording, as read back.
type seriesFile struct {
	path       string
	start, end time.Time
	lines      []line
}

func readSeries(t *testing.T, dir string) []seriesFile {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "nspidtrace-*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	var files []seriesFile
	for _, name := range names {
		f := seriesFile{path: name}
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		first, rest, _ := strings.Cut(string(data), "\n")
		var h struct{ Type, Start string }
		if err := json.Unmarshal([]byte(first), &h); err != nil || h.Type != "header" {
			t.Fatalf("%s does not start with a header: %.200s", name, first)
		}
		f.start, _ = time.Parse(time.RFC3339Nano, h.Start)
		tmp := filepath.Join(t.TempDir(), "rest")
		os.WriteFile(tmp, []byte(rest), 0o600)
		f.lines = readLines(t, tmp)
		last := f.lines[len(f.lines)-1]
		if last.Type != "end" {
			t.Fatalf("%s does not end with an end line: %+v", name, last)
		}
		f.end, _ = time.Parse(time.RFC3339Nano, last.Time)
		files = append(files, f)
	}
	return files
}

// TestRotationKeepsEveryEvent records a storm in a pid namespace into
// files of 1 MiB: the files together hold every event of the storm, each
// file is a complete recording, and --from DIR answers at an instant in
// each file as that file alone does, with a process that outlives them all.
func TestRotationKeepsEveryEvent(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	sleeper := exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "--", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	sleepHost := testenv.WaitChild(t, sleeper.Process.Pid)
	var truth events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, sleepHost, &truth); err != nil {
		t.Fatal(err)
	}
	sleepInNS := truth.NSPid[truth.Levels-1]

	dir := t.TempDir()
	rec := startRecord(t, dir, "--rotate-size", "1M")
	const n = 3000
	testenv.Storm(t, &ns, "forkexec", n)
	time.Sleep(300 * time.Millisecond)
	rec.Process.Signal(syscall.SIGTERM)
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v", err)
	}

	files := readSeries(t, dir)
	if len(files) < 3 {
		t.Fatalf("%d files: the storm should fill at least 3 of 1 MiB", len(files))
	}
	stormEvents := 0
	for _, f := range files {
		sawProc := false
		for _, l := range f.lines {
			switch {
			case l.Type == "proc":
				sawProc = true
			case len(l.PidNS) > 0 && l.PidNS[len(l.PidNS)-1] == ns.Inode && (l.Type == "fork" || l.Type == "exec" || l.Type == "exit"):
				stormEvents++
			}
		}
		if !sawProc {
			t.Errorf("%s has no snapshot", f.path)
		}
	}
	if want := testenv.StormEvents("forkexec", n); stormEvents != want {
		t.Errorf("the files hold %d events of the storm, want %d", stormEvents, want)
	}

	nsRef := fmt.Sprintf("pid:[%d]", ns.Inode)
	for i, f := range files {
		// An instant inside file i, after its snapshot.
		at := rfc3339(f.start.Add(f.end.Sub(f.start) / 2))
		got, stderr, code := runBinary(t, "--from", dir, "--at", at, "--pidns", nsRef, "-o", "json", fmt.Sprint(sleepInNS))
		var p line
		if code != 0 || json.Unmarshal([]byte(got), &p) != nil || p.PID != uint32(sleepHost) {
			t.Errorf("file %d, --at %s: %d in %s is %q (exit %d, %s), want host PID %d", i, at, sleepInNS, nsRef, got, code, stderr, sleepHost)
		}
		whole, _, code1 := runBinary(t, "--from", dir, "--at", at, "tree", "--pidns", nsRef)
		alone, _, code2 := runBinary(t, "--from", f.path, "--at", at, "tree", "--pidns", nsRef)
		if code1 != 0 || code2 != 0 || whole != alone || !strings.Contains(whole, "sleep(") {
			t.Errorf("file %d, --at %s: the series says (exit %d)\n%s\nthe file alone (exit %d)\n%s", i, at, code1, whole, code2, alone)
		}
	}
	// The whole series as one feed: every exec once, in time order.
	out, stderr, code := runBinary(t, "--from", dir, "trace", "--events", "exec", "--pidns", nsRef)
	if code != 0 {
		t.Fatalf("trace --from DIR: exit %d: %s", code, stderr)
	}
	execs, last := 0, ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		json.Unmarshal(sc.Bytes(), &l)
		if l.Time < last {
			t.Fatalf("trace --from DIR goes back in time: %s after %s", l.Time, last)
		}
		last = l.Time
		execs++
	}
	if want := n + 1; execs != want { // the storm helper's own exec, and its children's
		t.Errorf("trace --from DIR printed %d execs in the namespace, want %d", execs, want)
	}
}

// TestRotationKeep keeps the newest files only, and each left is whole.
func TestRotationKeep(t *testing.T) {
	testenv.Require(t)
	dir := t.TempDir()
	unrelated := filepath.Join(dir, "notes.txt")
	os.WriteFile(unrelated, []byte("mine"), 0o600)
	rec := startRecord(t, dir, "--rotate-size", "1M", "--keep", "2")
	testenv.Storm(t, nil, "forkexec", 3000)
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v", err)
	}
	files := readSeries(t, dir) // each whole: header, snapshot, end
	if len(files) != 2 {
		t.Errorf("%d files kept, want 2", len(files))
	}
	if data, err := os.ReadFile(unrelated); err != nil || string(data) != "mine" {
		t.Errorf("a file not of the series was touched: %q, %v", data, err)
	}
}
