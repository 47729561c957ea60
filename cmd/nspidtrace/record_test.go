package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// startRecord runs `nspidtrace record -o path [extra...]` and returns once
// recording.
func startRecord(t testing.TB, path string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binPath, append([]string{"record", "-o", path}, extra...)...)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "recording started"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("record did not start: %s", stderr.String())
		}
	}
	return cmd
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// TestRecordedIncident records a scripted incident and asks the recording
// what /proc said at several instants.
func TestRecordedIncident(t *testing.T) {
	testenv.Require(t)
	path := filepath.Join(t.TempDir(), "incident.ndjson")
	rec := startRecord(t, path)

	// A container-like namespace and a shell entered into it.
	ns := testenv.NewPidNS(t)
	shell := exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sh", "-c", "sleep 30")
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { shell.Process.Kill(); shell.Wait() }()
	shellPID := testenv.WaitChild(t, shell.Process.Pid)
	time.Sleep(200 * time.Millisecond)
	t1 := time.Now()
	// What tree --pidns shows of the container at t1, from /proc.
	wantTree := fmt.Sprintf("sleep(1, host %d) [pid:[%d]]\nsh(2, host %d) [pid:[%d]] [entered from nsenter(%d)]\n",
		ns.Holder, ns.Inode, shellPID, ns.Inode, shell.Process.Pid)
	if kids, err := procfs.Descendants(procfs.ProcRoot, shellPID); err == nil && len(kids) == 2 {
		wantTree += fmt.Sprintf("└─sleep(3, host %d)\n", kids[1]) // this sh forks the command instead of exec'ing it
	}

	// Exits with a code and by a signal.
	code4 := exec.Command("sh", "-c", "exit 4")
	code4.Run()
	killed := exec.Command("sh", "-c", "kill -KILL $$")
	killed.Run()

	// PID 50 of a fresh namespace: held, exited with 3, then reused.
	reuse := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", `
		echo 49 > /proc/sys/kernel/ns_last_pid; sh -c 'sleep 1; exit 3' &
		sleep 2.4
		echo 49 > /proc/sys/kernel/ns_last_pid; sleep 5 &
		wait`)
	if err := reuse.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { reuse.Process.Kill(); reuse.Wait() }()
	inner := testenv.WaitChild(t, reuse.Process.Pid) // PID 1 there
	innerNS, err := procfs.ResolvePidNS(procfs.ProcRoot, fmt.Sprint(inner))
	if err != nil {
		t.Fatal(err)
	}
	holderOf50 := func() int {
		pid, err := procfs.FindInNS(procfs.ProcRoot, innerNS, 50)
		if err != nil {
			t.Fatalf("PID 50 in the fresh namespace: %v", err)
		}
		return pid
	}
	// The first holder lives from 0 to 1 s, the second from 2.4 s on.
	time.Sleep(400 * time.Millisecond)
	t2, first := time.Now(), holderOf50()
	time.Sleep(1300 * time.Millisecond)
	t3 := time.Now() // the first holder exited, the second is not born
	if _, err := procfs.FindInNS(procfs.ProcRoot, innerNS, 50); err == nil {
		t.Fatal("PID 50 is held between the two holders: the script's timing is off")
	}
	time.Sleep(1200 * time.Millisecond)
	t4, second := time.Now(), holderOf50()
	if first == second {
		t.Fatalf("PID 50 has the same host PID %d twice", first)
	}
	time.Sleep(200 * time.Millisecond)

	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v", err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("recording mode %v (%v), want 0600", st.Mode(), err)
	}

	from := []string{"--from", path}
	ask := func(at time.Time, args ...string) line {
		return procJSON(t, append(append(from, "--at", rfc3339(at)), args...)...)
	}
	if l := ask(t1, "--pidns", fmt.Sprintf("pid:[%d]", ns.Inode), "2"); l.PID != uint32(shellPID) {
		t.Errorf("at t1, PID 2 in the container: host %d, want the nsenter'd shell %d", l.PID, shellPID)
	}
	ref := []string{"--pidns", fmt.Sprint(inner)}
	l2 := ask(t2, append(ref, "50")...)
	if l2.PID != uint32(first) {
		t.Errorf("at t2, PID 50: host %d, want %d", l2.PID, first)
	}
	l4 := ask(t4, append(ref, "50")...)
	if l4.PID != uint32(second) {
		t.Errorf("at t4, PID 50: host %d, want %d (the reuse)", l4.PID, second)
	}
	// The two holders of PID 50 have keys of their own, and each names
	// the namespace's init, alive throughout, as its parent.
	if l2.Key == "" || l2.Key == l4.Key || l2.PKey == "" || l2.PKey != l4.PKey {
		t.Errorf("keys of PID 50's holders: %q (parent %q) and %q (parent %q); want two keys and one parent key", l2.Key, l2.PKey, l4.Key, l4.PKey)
	}
	_, stderr, code := runBinary(t, append(append(from, "--at", rfc3339(t3)), append(ref, "50")...)...)
	if code != exitNotFound || !strings.Contains(stderr, fmt.Sprintf("host PID %d", first)) || !strings.Contains(stderr, "exited at") {
		t.Errorf("at t3, PID 50: exit %d, %q; want 3 naming host PID %d and when it exited", code, stderr, first)
	}

	stdout, _, _ := runBinary(t, append(from, "trace", "--events", "exit")...)
	want := map[int]string{code4.Process.Pid: `"exit_code":4,"signal":0`, killed.Process.Pid: `"exit_code":0,"signal":9`, first: `"exit_code":3,"signal":0`}
	for pid, fields := range want {
		if !strings.Contains(stdout, fmt.Sprintf(`"type":"exit","pid":%d,`, pid)) || !strings.Contains(stdout, fields) {
			t.Errorf("trace --from: no exit of %d with %s", pid, fields)
		}
	}
	stdout, _, _ = runBinary(t, append(from, "--at", rfc3339(t1), "tree", "--pidns", fmt.Sprintf("pid:[%d]", ns.Inode))...)
	if stdout != wantTree {
		t.Errorf("tree at t1:\n%s\nwant:\n%s", stdout, wantTree)
	}
}

func TestRecordWriteFailure(t *testing.T) {
	testenv.Require(t)
	// A disk that fills: a tmpfs of 64 KiB, less than one snapshot.
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tiny", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a small tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	cmd := exec.Command(binPath, "record", "-o", filepath.Join(dir, "r.ndjson"), "--duration", "3s")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(stderr.String(), "no space left") {
		t.Errorf("record to a full disk: exit %d, %q", code, stderr.String())
	}
}

func TestRecordFileRemoved(t *testing.T) {
	testenv.Require(t)
	path := filepath.Join(t.TempDir(), "gone.ndjson")
	rec := startRecord(t, path)
	os.Remove(path)
	done := make(chan error, 1)
	go func() { done <- rec.Wait() }()
	select {
	case <-done:
		if code := rec.ProcessState.ExitCode(); code != exitFailure {
			t.Errorf("record whose file was removed: exit %d, want 1", code)
		}
	case <-time.After(5 * time.Second):
		t.Error("record kept writing into a removed file")
	}
}

func TestFromBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := `{"type":"header","format":"nspidtrace-record","version":1,"start":"2026-11-23T07:39:05Z"}` + "\n" +
		`{"time":"2026-11-23T07:39:05.1Z","type":"proc","pid":7,"ppid":1,"nspid":[7],"pidns":[4026531836],"nsppid":[1],"comm":"bash","args":[],"ns":{},"uid":0,"gid":0}` + "\n"
	files := map[string]string{
		"truncated": good + `{"time":"2026-11-23T07:39:06Z","type":"fork","pi`,
		"malformed": good + "{oops}\n" + good[strings.Index(good, "\n")+1:],
		"foreign":   "# README\nnothing here\n",
	}
	for name, text := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600)
	}
	tests := []struct {
		args     []string
		code     int
		mentions string
	}{
		{[]string{"--from", filepath.Join(dir, "truncated"), "7"}, exitOK, "middle of a line"},
		{[]string{"--from", filepath.Join(dir, "malformed"), "7"}, exitFailure, "line 3"},
		{[]string{"--from", filepath.Join(dir, "foreign"), "7"}, exitUsage, "not an nspidtrace recording"},
		{[]string{"--from", filepath.Join(dir, "missing"), "7"}, exitFailure, "no such file"},
		{[]string{"--from", filepath.Join(dir, "truncated"), "--at", "yesterday", "7"}, exitUsage, "bad --at"},
		{[]string{"--from", filepath.Join(dir, "truncated"), "8"}, exitNotFound, "no process 8"},
		{[]string{"--at", "+5s", "7"}, exitUsage, "--at goes with --from"},
		{[]string{"record"}, exitUsage, "-o FILE"},
	}
	for _, tt := range tests {
		_, stderr, code := runBinary(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.mentions) || strings.Contains(stderr, "goroutine") {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", tt.args, code, stderr, tt.code, tt.mentions)
		}
	}
}
