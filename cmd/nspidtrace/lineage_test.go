package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// procChain is pid's ancestors from the host's /proc, parent first. A
// parent whose namespaces even root cannot read (this project's sandbox
// has one as PID 1, which the kernel's task iterator does not visit) ends
// the chain, as it ends the tree.
func procChain(t *testing.T, pid int) []uint32 {
	t.Helper()
	var chain []uint32
	var ev events.Event
	for {
		if err := procfs.ReadProc(procfs.ProcRoot, pid, &ev); err != nil {
			t.Fatalf("read /proc/%d: %v", pid, err)
		}
		if ev.PPID == 0 {
			return chain
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns/pid", ev.PPID)); errors.Is(err, os.ErrPermission) {
			return chain
		}
		chain = append(chain, ev.PPID)
		pid = int(ev.PPID)
	}
}

// TestExecLineAncestors runs a command in a shell entered into a pid
// namespace with nsenter: its exec line names its ancestors as /proc does,
// each with its PID in the command's namespace where it is visible there.
func TestExecLineAncestors(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	s := startTrace(t, "--events", "exec")
	shell := exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sh", "-c", "sleep 2.5; :")
	if err := shell.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { shell.Process.Kill(); shell.Wait() }()
	sh := testenv.WaitChild(t, shell.Process.Pid)
	var sleepPID int
	for deadline := time.Now().Add(5 * time.Second); sleepPID == 0; time.Sleep(20 * time.Millisecond) {
		if kids, err := procfs.Descendants(procfs.ProcRoot, sh); err == nil && len(kids) == 2 {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", kids[1])); string(comm) == "sleep\n" {
				sleepPID = int(kids[1])
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the entered shell did not start sleep")
		}
	}
	want := procChain(t, sleepPID)
	lines := s.stop(t, syscall.SIGINT)

	var got *line
	for i := range lines {
		if lines[i].Type == "exec" && lines[i].PID == uint32(sleepPID) {
			got = &lines[i]
		}
	}
	if got == nil {
		t.Fatalf("no exec line of sleep (%d)", sleepPID)
	}
	if len(got.Ancestors) != len(want) {
		t.Fatalf("exec line ancestors %+v, /proc says %v", got.Ancestors, want)
	}
	for i, a := range got.Ancestors {
		if a.PID != want[i] || a.Key == "" || a.Comm == "" {
			t.Errorf("ancestor %d: %+v, /proc says host PID %d", i, a, want[i])
		}
	}
	// The command descends from the shell nsenter forked into the namespace.
	if got.EnteredBy == "" || got.EnteredBy != got.Ancestors[1].Key || got.NSInit {
		t.Errorf("exec line entered_by %q ns_init %v; want nsenter's key %q", got.EnteredBy, got.NSInit, got.Ancestors[1].Key)
	}
	// The shell is PID 2 of the namespace; nsenter, outside it, has none there.
	if got.Ancestors[0].NSPid != 2 || got.Ancestors[0].Comm != "sh" || got.Ancestors[1].NSPid != 0 || got.Ancestors[1].Comm != "nsenter" {
		t.Errorf("the first ancestors are %+v and %+v; want sh as PID 2 there, then nsenter with none", got.Ancestors[0], got.Ancestors[1])
	}
}

func TestPIDAncestors(t *testing.T) {
	testenv.Require(t)
	pid := strconv.Itoa(os.Getpid())
	want := procChain(t, os.Getpid())
	l := procJSON(t, "--ancestors", pid)
	if len(l.Ancestors) != len(want) || len(want) == 0 {
		t.Fatalf("--ancestors -o json: %+v, /proc says %v", l.Ancestors, want)
	}
	for i, a := range l.Ancestors {
		if a.PID != want[i] || a.NSPid != want[i] {
			t.Errorf("ancestor %d: %+v, /proc says %d", i, a, want[i])
		}
	}
	stdout, stderr, code := runBinary(t, pid, "--ancestors")
	_, table, ok := strings.Cut(stdout, "ANCESTORS (parent first)\nPID ")
	if code != exitOK || !ok || !strings.HasPrefix(strings.SplitN(table, "\n", 3)[1], fmt.Sprint(want[0])+" ") {
		t.Errorf("--ancestors text: exit %d, %q %s; want the parent %d first", code, stdout, stderr, want[0])
	}
}

// TestRenameReachesTreeAndFeed: a shell renames itself, then runs a
// command. The feed has the rename, the live tree knows the new name (the
// command's exec line names its parent by it), and look-back shows it.
// Exec's own change of comm is not a rename.
func TestRenameReachesTreeAndFeed(t *testing.T) {
	testenv.Require(t)
	path := filepath.Join(t.TempDir(), "rec.ndjson")
	rec := startRecord(t, path)
	sh := exec.Command("sh", "-c", `printf renamed > /proc/$$/comm; sleep 0.6; :`)
	if err := sh.Run(); err != nil {
		t.Fatal(err)
	}
	midway := time.Now().Add(-300 * time.Millisecond) // during the sleep
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatal(err)
	}

	var renames, sleepExecs []line
	for _, l := range readLines(t, path) {
		switch {
		case l.Type == "rename" && (l.PID == uint32(sh.Process.Pid) || l.PPID == uint32(sh.Process.Pid)):
			renames = append(renames, l)
		case l.Type == "exec" && l.PPID == uint32(sh.Process.Pid):
			sleepExecs = append(sleepExecs, l)
		}
	}
	if len(renames) != 1 || renames[0].Comm != "renamed" || renames[0].OldComm != "sh" {
		t.Fatalf("rename lines %+v; want one, sh to renamed (exec is not a rename)", renames)
	}
	if len(sleepExecs) != 1 || len(sleepExecs[0].Ancestors) == 0 || sleepExecs[0].Ancestors[0].Comm != "renamed" {
		t.Errorf("the command's exec line %+v; want its parent named renamed", sleepExecs)
	}
	if l := procJSON(t, "--from", path, "--at", rfc3339(midway), strconv.Itoa(sh.Process.Pid)); l.Comm != "renamed" {
		t.Errorf("look-back during the sleep: comm %q, want renamed", l.Comm)
	}
}

// TestZombieIsShown: a child whose parent never reaps it is still a
// process, and <pid> and tree say what it is, as /proc does (State: Z).
func TestZombieIsShown(t *testing.T) {
	testenv.Require(t)
	// sh starts a child that exits with 7, then becomes sleep, which never waits.
	parent := exec.Command("sh", "-c", `sh -c 'exit 7' & exec sleep 30`)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { parent.Process.Kill(); parent.Wait() }()
	var zombie int
	for deadline := time.Now().Add(5 * time.Second); zombie == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no zombie child appeared")
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent.Process.Pid, parent.Process.Pid))
		for _, c := range strings.Fields(string(children)) {
			status, _ := os.ReadFile("/proc/" + c + "/status")
			if strings.Contains(string(status), "State:\tZ") {
				zombie, _ = strconv.Atoi(c)
			}
		}
	}
	pid := strconv.Itoa(zombie)
	stdout, stderr, code := runBinary(t, pid)
	if code != exitOK || !strings.Contains(stdout, "zombie: exited with 7; its parent has not reaped it") {
		t.Errorf("nspidtrace ZOMBIE: exit %d, %q %s", code, stdout, stderr)
	}
	var l struct {
		State    string `json:"state"`
		ExitCode int    `json:"exit_code"`
		PID      int    `json:"pid"`
	}
	stdout, _, _ = runBinary(t, "-o", "json", pid)
	if err := json.Unmarshal([]byte(stdout), &l); err != nil || l.State != "zombie" || l.ExitCode != 7 || l.PID != zombie {
		t.Errorf("-o json: %+v (%v) from %q", l, err, stdout)
	}
	stdout, _, _ = runBinary(t, "tree", strconv.Itoa(parent.Process.Pid))
	if !strings.Contains(stdout, fmt.Sprintf("└─sh(%d) <zombie>", zombie)) {
		t.Errorf("tree of the parent: %q; want the child marked <zombie>", stdout)
	}
}

// TestSignalsNameSenderAndTarget: kill -TERM and kill -KILL from known
// shells yield signal lines naming both sides; SIGCHLD, which every exit
// sends, is not reported.
func TestSignalsNameSenderAndTarget(t *testing.T) {
	testenv.Require(t)
	s := startTrace(t, "--events", "signal")
	var targets, senders [2]int
	for i, sig := range []string{"TERM", "KILL"} {
		target := exec.Command("sleep", "30")
		if err := target.Start(); err != nil {
			t.Fatal(err)
		}
		sender := exec.Command("sh", "-c", fmt.Sprintf("kill -%s %d", sig, target.Process.Pid))
		if err := sender.Run(); err != nil {
			t.Fatal(err)
		}
		target.Wait()
		targets[i], senders[i] = target.Process.Pid, sender.Process.Pid
	}
	time.Sleep(100 * time.Millisecond)
	lines := s.stop(t, syscall.SIGINT)
	for i, want := range []struct {
		num  int
		name string
	}{{15, "SIGTERM"}, {9, "SIGKILL"}} {
		found := false
		for _, l := range lines {
			if l.Type == "signal" && l.PID == uint32(targets[i]) && l.Signal == want.num {
				found = true
				if l.SignalName != want.name || l.Result != "delivered" || l.Sender.PID != uint32(senders[i]) ||
					l.Sender.Comm != "sh" || l.Sender.Key == "" || len(l.Sender.NSPid) == 0 || l.Key == "" {
					t.Errorf("%s line %+v; want sender sh (%d), delivered", want.name, l, senders[i])
				}
			}
		}
		if !found {
			t.Errorf("no %s line for target %d", want.name, targets[i])
		}
	}
	for _, l := range lines {
		if l.Type == "signal" && (l.Signal == 17 || l.Signal == 18) {
			t.Errorf("a SIGCHLD or SIGCONT line: %+v", l)
		}
	}
}
