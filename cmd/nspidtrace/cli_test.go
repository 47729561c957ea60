package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nspidtrace/nspidtrace/internal/describe"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// runBinary runs nspidtrace with args and returns stdout, stderr and the exit code.
func runBinary(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runBinaryEnv(t, nil, args...)
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		mentions string
	}{
		{nil, exitUsage, "no command"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"--bogus", "trace"}, exitUsage, "bogus"},
		{[]string{"trace", "--bogus"}, exitUsage, "bogus"},
		{[]string{"trace", "extra"}, exitUsage, "no arguments"},
		{[]string{"trace", "--pid", "abc"}, exitUsage, "not a PID"},
		{[]string{"trace", "--pid", "0"}, exitUsage, "not a PID"},
		{[]string{"trace", "--pid", "-5"}, exitUsage, "not a PID"},
		{[]string{"trace", "--pid", "99999999999"}, exitUsage, "not a PID"},
		{[]string{"trace", "--events", "fork,bogus"}, exitUsage, "bogus"},
		{[]string{"trace", "--duration", "soon"}, exitUsage, "duration"},
		{[]string{"trace", "--duration", "-1s"}, exitUsage, "positive"},
		{[]string{"trace", "--flush", "0s"}, exitUsage, "between 1ms and 1s"},
		{[]string{"record", "-o", "x.ndjson", "--flush", "2s"}, exitUsage, "between 1ms and 1s"},
		{[]string{"--from", "x.ndjson", "trace", "--flush", "1s"}, exitUsage, "live tracing"},
		{[]string{"trace", "--comm", "a-very-long-command-name"}, exitUsage, "comm"},
		{[]string{"trace", "--log-level", "loud"}, exitUsage, "log-level"},
		{[]string{"trace", "--log-format", "xml"}, exitUsage, "log-format"},
		{[]string{"trace", "--pidns", "pid:[abc]"}, exitUsage, "pidns"},
		{[]string{"trace", "--pidns", "pid:[123"}, exitUsage, "pidns"},
		{[]string{"trace", "--pidns", "/etc/hostname"}, exitUsage, "not a pid namespace"},
		{[]string{"trace", "--pidns", "/no/such/file"}, exitNotFound, "no such file"},
		{[]string{"trace", "--pidns", "1.5"}, exitUsage, "pidns"},
		// PID_MAX_LIMIT: no process can have it.
		{[]string{"trace", "--pidns", "4194304"}, exitNotFound, "no such process"},
		{[]string{"trace", "--pid", "4194304"}, exitNotFound, "no such process"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := runBinary(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			first, _, _ := strings.Cut(stderr, "\n")
			if !strings.HasPrefix(first, "nspidtrace: ") || !strings.Contains(first, tt.mentions) {
				t.Errorf("first stderr line %q does not say what is wrong (%q)", first, tt.mentions)
			}
			if strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr: %s", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout is not empty: %q", stdout)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"trace", "--help"}} {
		stdout, _, code := runBinary(t, args...)
		if code != exitOK || !strings.Contains(stdout, "nspidtrace [flags] trace") || !strings.Contains(stdout, "Examples:") {
			t.Errorf("%v: exit %d, help: %q", args, code, stdout)
		}
	}
	stdout, _, code := runBinary(t, "version")
	if code != exitOK || !strings.HasPrefix(stdout, "nspidtrace ") || !strings.Contains(stdout, "BPF programs for Linux 5.18 and newer") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
}

// programsGone fails t unless the programs ids leave the kernel. The
// kernel frees a detached tracing program after an RCU grace period, so
// give it a moment.
func programsGone(t *testing.T, ids []ebpf.ProgramID) {
	t.Helper()
	left := func() (n int) {
		for _, id := range ids {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				p.Close()
				n++
			}
		}
		return n
	}
	n := left()
	for deadline := time.Now().Add(5 * time.Second); n != 0 && time.Now().Before(deadline); n = left() {
		time.Sleep(50 * time.Millisecond)
	}
	if n != 0 {
		t.Errorf("%d of the trace's %d programs still loaded 5s after it ended", n, len(ids))
	}
}

func TestTraceEndsCleanly(t *testing.T) {
	testenv.Require(t)
	stops := []struct {
		name string
		args []string
		stop func(s *session) []line
	}{
		{"SIGINT", nil, func(s *session) []line { return s.stop(t, syscall.SIGINT) }},
		{"SIGTERM", nil, func(s *session) []line { return s.stop(t, syscall.SIGTERM) }},
		{"duration", []string{"--duration", "1500ms"}, func(s *session) []line {
			if err := s.cmd.Wait(); err != nil {
				t.Fatalf("trace --duration: %v", err)
			}
			return readLines(t, s.out)
		}},
	}
	for _, st := range stops {
		t.Run(st.name, func(t *testing.T) {
			s := startTrace(t, st.args...)
			// fork, exec, exit, rename, signal; setns and unshare at
			// entry and exit; the credential calls' entry (prctl's
			// own) and exit; cgroup_mkdir.
			ids := testenv.HeldPrograms(t, s.cmd.Process.Pid)
			handlers := 0
			for _, id := range ids {
				if p, err := ebpf.NewProgramFromID(id); err == nil {
					if info, err := p.Info(); err == nil && strings.HasPrefix(info.Name, "handle_") {
						handlers++
					}
					p.Close()
				}
			}
			if handlers != 13 {
				t.Errorf("%d tracing programs loaded while tracing, want 13 (and the task iterator: %d in all)", handlers, len(ids))
			}
			marker := exec.Command("sh", "-c", "exit 42")
			marker.Run()
			lines := st.stop(s)
			found := false
			for _, l := range lines {
				found = found || (l.PID == uint32(marker.Process.Pid) && l.Type == "exit" && l.ExitCode == 42)
			}
			if !found {
				t.Error("the exit just before the stop is missing from the output")
			}
			programsGone(t, ids)
		})
	}
}

func TestClosedPipe(t *testing.T) {
	testenv.Require(t)
	cmd := exec.Command(binPath, "trace")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// Like `| head -n 1`: read a line, then go away.
		for {
			exec.Command("true").Run()
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	ids := testenv.HeldPrograms(t, cmd.Process.Pid)
	stdout.Close()
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		close(done)
		if err != nil {
			t.Errorf("trace into a closed pipe ended with %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		close(done)
		cmd.Process.Kill()
		t.Fatal("trace kept running after its reader went away")
	}
	if len(ids) == 0 {
		t.Error("the trace held no BPF programs")
	}
	programsGone(t, ids)
}

// TestOneShotIntoClosedPipe: tree and <pid> whose reader is already gone
// end with exit 0, as after `| head`, not killed by SIGPIPE: it is ignored
// for every command, also those that catch no other signal.
func TestOneShotIntoClosedPipe(t *testing.T) {
	for _, args := range [][]string{{"tree"}, {strconv.Itoa(os.Getpid())}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
		cmd := exec.Command(binPath, args...)
		cmd.Stdout = w
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err = cmd.Run()
		w.Close()
		if err != nil {
			t.Errorf("%v into a closed pipe: %v; stderr:\n%s", args, err, stderr.String())
		}
	}
}

func TestUnprivileged(t *testing.T) {
	testenv.Require(t) // root is needed to drop to another user
	cmd := exec.Command(binPath, "trace", "--duration", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure {
		t.Fatalf("as nobody: exit %d (%v), want 1; stderr: %s", code, err, stderr.String())
	}
	msg := strings.TrimSpace(stderr.String())
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "CAP_BPF") || !strings.Contains(msg, "root") {
		t.Errorf("want one line naming what is missing, got %q", msg)
	}
}

// TestRootWithoutBPFCapabilities: root without CAP_BPF and CAP_SYS_ADMIN
// (root in a container: docker exec web nspidtrace 10) gets the /proc
// answer, as an unprivileged user does, not a failed map creation; what
// needs the kernel says which capabilities are missing.
func TestRootWithoutBPFCapabilities(t *testing.T) {
	testenv.Require(t)
	drop := []string{"--bounding-set", "-bpf,-sys_admin,-perfmon", binPath}
	cmd := exec.Command("setpriv", append(drop, strconv.Itoa(os.Getpid()), "-o", "json")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"pid":`+strconv.Itoa(os.Getpid())+`,`) || !strings.Contains(stderr.String(), "answering from /proc") {
		t.Errorf("<pid> -o json without CAP_BPF: %v, %s %s", err, out, stderr.String())
	}
	cmd = exec.Command("setpriv", append(drop, "trace", "--duration", "1s")...)
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(out), "CAP_BPF") || strings.Contains(string(out), "map create") {
		t.Errorf("trace without CAP_BPF: exit %d, %s", code, out)
	}
}

// TestInsideUserNamespace: root in a user namespace of its own (rootless
// Podman, unshare -r) has every capability there and none that BPF heeds:
// it gets the /proc answer, not a failed load.
func TestInsideUserNamespace(t *testing.T) {
	testenv.Require(t) // unshare -r needs no root, but the test runs everywhere else as root
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc", binPath, "tree", "-o", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !strings.Contains(stderr.String(), "answering from /proc") {
		t.Fatalf("tree in a user namespace: %v %s", err, stderr.String())
	}
	// It sees its own pid namespace, where it is PID 1.
	if !strings.Contains(string(out), `"nspid":[1],`) {
		t.Errorf("tree in a user and pid namespace: %s", out)
	}
	cmd = exec.Command("unshare", "--user", "--map-root-user", binPath, "trace", "--duration", "1s")
	msg, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != exitFailure || !strings.Contains(string(msg), "CAP_BPF") {
		t.Errorf("trace in a user namespace: exit %d, %s", code, msg)
	}
}

func TestColumnsFlag(t *testing.T) {
	for _, tt := range []struct {
		output, columns string
		want            []string
		bad             bool
	}{
		{"text", "", nil, false},
		{"wide", "", []string{"user", "huser", "caps", "seccomp", "lsm", "netns", "state", "flags", "args"}, false},
		{"text", "caps, netns,caps", []string{"caps", "netns"}, false},
		{"text", "caps,bogus", nil, true},
		{"json", "caps", nil, true},
	} {
		o := &options{output: tt.output, columns: tt.columns}
		err := o.checkOutput()
		if (err != nil) != tt.bad {
			t.Errorf("-o %s --columns %q: %v", tt.output, tt.columns, err)
			continue
		}
		if tt.bad {
			continue
		}
		cols, _ := describe.ParseColumns(o.columns, o.output == "wide")
		var names []string
		for _, c := range cols {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, tt.want) {
			t.Errorf("-o %s --columns %q: %v, want %v", tt.output, tt.columns, names, tt.want)
		}
	}
}

// TestUnprivilegedTreeShowsEveryProcess: as a user without privileges,
// tree lists every process /proc shows that user, with its PIDs at every
// level as NStgid has them, and says which namespaces it could not read.
// Only processes alive across both reads of /proc are compared: the
// machine may be busy.
func TestUnprivilegedTreeShowsEveryProcess(t *testing.T) {
	testenv.Require(t) // root is needed to drop to another user
	nested := exec.Command("unshare", "--pid", "--fork", "sleep", "30")
	if err := nested.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { nested.Process.Kill(); nested.Wait() }()
	time.Sleep(200 * time.Millisecond)

	stable := func() map[uint32]string { // PID -> NStgid, with the start time
		out := map[uint32]string{}
		pids, _ := procfs.ListPIDs(procfs.ProcRoot)
		for _, pid := range pids {
			status, err1 := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
			start, err2 := procfs.StartTicks(procfs.ProcRoot, pid)
			if err1 == nil && err2 == nil {
				_, rest, _ := strings.Cut(string(status), "NStgid:")
				nstgid, _, _ := strings.Cut(rest, "\n")
				out[uint32(pid)] = strings.Join(strings.Fields(nstgid), ",") + "@" + strconv.FormatUint(start, 10)
			}
		}
		return out
	}
	before := stable()
	cmd := exec.Command(binPath, "tree", "-o", "json")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	after := stable()
	if err != nil {
		t.Fatalf("tree as nobody: %v %s", err, stderr.String())
	}
	got := map[uint32]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			PID   uint32   `json:"pid"`
			NSPid []uint32 `json:"nspid"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		s := make([]string, len(l.NSPid))
		for i, n := range l.NSPid {
			s[i] = strconv.FormatUint(uint64(n), 10)
		}
		got[l.PID] = strings.Join(s, ",")
	}
	compared, nestedCompared := 0, 0
	for pid, was := range before {
		if after[pid] != was {
			continue // born or gone meanwhile
		}
		compared++
		nstgid, _, _ := strings.Cut(was, "@")
		if strings.Contains(nstgid, ",") {
			nestedCompared++ // the unshare's sleep, at least
		}
		if got[pid] != nstgid {
			t.Errorf("PID %d: tree as nobody says nspid [%s], /proc NStgid [%s]", pid, got[pid], nstgid)
		}
	}
	if compared < 10 || nestedCompared == 0 {
		t.Errorf("compared %d processes, %d of them in nested pid namespaces", compared, nestedCompared)
	}
	if !strings.Contains(stderr.String(), "pid namespaces you may not read") {
		t.Errorf("no warning of what is missing: %s", stderr.String())
	}
}
