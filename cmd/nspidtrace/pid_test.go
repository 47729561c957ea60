package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// procJSON runs nspidtrace with args (ending in a PID) and -o json, and
// returns the proc object it printed.
func procJSON(t *testing.T, args ...string) line {
	t.Helper()
	stdout, stderr, code := runBinary(t, append([]string{"-o", "json"}, args...)...)
	if code != exitOK {
		t.Fatalf("nspidtrace %v: exit %d: %s", args, code, stderr)
	}
	var l line
	if err := json.Unmarshal([]byte(stdout), &l); err != nil || l.Type != "proc" {
		t.Fatalf("nspidtrace %v printed %q (%v)", args, stdout, err)
	}
	return l
}

// wantProc checks a proc object against the host's /proc.
func wantProc(t *testing.T, l line, pid int) {
	t.Helper()
	var truth events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, pid, &truth); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.NSPid, truth.NSPid[:truth.Levels]) || !slices.Equal(l.PidNS, truth.PidNS[:truth.Levels]) ||
		!slices.Equal(l.NSPPid, truth.NSPPid[:truth.Levels]) || l.PPID != truth.PPID || l.Comm != truth.CommString() {
		t.Errorf("proc %+v\n/proc: nspid %v pidns %v nsppid %v ppid %d comm %s", l, truth.NSPid[:truth.Levels],
			truth.PidNS[:truth.Levels], truth.NSPPid[:truth.Levels], truth.PPID, truth.CommString())
	}
	for k, name := range events.NSNames {
		if l.NS[name] != truth.NS[k] {
			t.Errorf("ns %s: %d, /proc %d", name, l.NS[name], truth.NS[k])
		}
	}
	if !slices.Equal(l.Args, truth.Argv()) {
		t.Errorf("args %q, /proc %q", l.Args, truth.Argv())
	}
}

func TestShowPIDFromTheHost(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	l := procJSON(t, fmt.Sprint(ns.Holder))
	wantProc(t, l, ns.Holder)

	// The four REF forms name the same namespace: PID 1 there is the holder.
	for _, ref := range []string{fmt.Sprint(ns.Holder), fmt.Sprintf("/proc/%d/ns/pid", ns.Holder),
		fmt.Sprintf("pid:[%d]", ns.Inode), fmt.Sprint(ns.Inode)} {
		if l := procJSON(t, "--pidns", ref, "1"); l.PID != uint32(ns.Holder) {
			t.Errorf("--pidns %s 1: host PID %d, want %d", ref, l.PID, ns.Holder)
		}
	}

	// Looked at from the namespace, the host PID is still shown, first.
	stdout, _, code := runBinary(t, "--pidns", fmt.Sprint(ns.Holder), "1")
	rows := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != exitOK || len(rows) != 5 || rows[1] != "user   uid 0 (root)" || !strings.HasPrefix(rows[2], "LEVEL") ||
		strings.Fields(rows[3])[1] != fmt.Sprint(ns.Holder) ||
		!strings.Contains(rows[4], fmt.Sprintf("pid:[%d]", ns.Inode)) || strings.Fields(rows[4])[1] != "1" {
		t.Errorf("text with --pidns: exit %d\n%s", code, stdout)
	}
	stdout, _, _ = runBinary(t, fmt.Sprint(ns.Holder))
	if rows := strings.Split(strings.TrimSpace(stdout), "\n"); len(rows) != 5 || strings.Fields(rows[3])[1] != fmt.Sprint(ns.Holder) {
		t.Errorf("text: want the sleep line, the user, a header and one row per level, host first:\n%s", stdout)
	}
}

// TestShowPIDInsideAContainer runs nspidtrace in a nested pid namespace with
// its own /proc: PIDs are read there, and the host's levels still show.
func TestShowPIDInsideAContainer(t *testing.T) {
	testenv.Require(t)
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
		`sleep 5 & "$1" -o json $!; kill $!`, "sh", binPath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inside: %v", err)
	}
	var l line
	if err := json.Unmarshal(out, &l); err != nil {
		t.Fatalf("inside printed %q", out)
	}
	if len(l.NSPid) != 2 || l.NSPid[1] != 2 || l.NSPid[0] == 2 || l.Comm != "sleep" || l.NSPPid[1] != 1 {
		t.Errorf("inside, the sleep: nspid %v nsppid %v comm %s; want [host, 2] with parent 1", l.NSPid, l.NSPPid, l.Comm)
	}
}

func TestShowPIDNotFound(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	for _, args := range [][]string{{"4194304"}, {"--pidns", fmt.Sprint(ns.Holder), "2"}} {
		_, stderr, code := runBinary(t, args...)
		if code != exitNotFound || !strings.Contains(stderr, "no process") {
			t.Errorf("%v: exit %d, %q; want 3 and a line saying there is no such process", args, code, stderr)
		}
	}
	for _, args := range [][]string{{"0"}, {"12x"}, {"99999999"}, {"-o", "yaml", "1"}, {"1", "2"}} {
		if _, stderr, code := runBinary(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
}

// TestShowPIDUnprivileged answers from /proc, saying so on stderr.
func TestShowPIDUnprivileged(t *testing.T) {
	testenv.Require(t)
	cmd := exec.Command(binPath, "-o", "json", fmt.Sprint(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("as nobody: %v: %s", err, stderr.String())
	}
	var l line
	if err := json.Unmarshal(out, &l); err != nil || l.PID != uint32(os.Getpid()) {
		t.Errorf("as nobody printed %q", out)
	}
	if !strings.Contains(stderr.String(), "/proc") {
		t.Errorf("stderr does not say the answer comes from /proc: %q", stderr.String())
	}
}

func TestTreeOfANamespace(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	// A shell entered with nsenter: its parent is outside the namespace.
	enter := exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sh", "-c", "sleep 5 & wait")
	if err := enter.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { enter.Process.Kill(); enter.Wait() }()
	sh := testenv.WaitChild(t, enter.Process.Pid)
	sleep := testenv.WaitChild(t, sh)

	stdout, stderr, code := runBinary(t, "tree", "--pidns", fmt.Sprintf("pid:[%d]", ns.Inode))
	// Both roots begin the namespace: their parents are outside it. The
	// shell entered it, from nsenter; the holder is its init. Each shows
	// its host PID after the namespace's.
	want := fmt.Sprintf("sleep(1, host %d) [pid:[%d]]\nsh(2, host %d) [pid:[%d]] [entered from nsenter(%d)]\n└─sleep(3, host %d)\n",
		ns.Holder, ns.Inode, sh, ns.Inode, enter.Process.Pid, sleep)
	if code != exitOK || stdout != want {
		t.Errorf("tree --pidns: exit %d %s\n got:\n%s\nwant:\n%s", code, stderr, stdout, want)
	}

	stdout, _, code = runBinary(t, "tree", "-o", "json", fmt.Sprint(enter.Process.Pid))
	var pids []uint32
	seen := map[uint32]bool{}
	for _, s := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("tree -o json line %q: %v", s, err)
		}
		if len(pids) > 0 && !seen[l.PPID] {
			t.Errorf("%d comes before its parent %d", l.PID, l.PPID)
		}
		seen[l.PID] = true
		pids = append(pids, l.PID)
		wantProc(t, l, int(l.PID))
	}
	if code != exitOK || len(pids) != 3 || pids[0] != uint32(enter.Process.Pid) || pids[1] != uint32(sh) {
		t.Errorf("tree -o json of nsenter: %v", pids)
	}

	stdout, _, _ = runBinary(t, "tree", fmt.Sprint(enter.Process.Pid))
	if !strings.Contains(stdout, fmt.Sprintf("sh(%d/2) [pid:[%d]]", sh, ns.Inode)) {
		t.Errorf("tree of nsenter does not mark the namespace boundary:\n%s", stdout)
	}
}

func TestTraceSnapshot(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	s := startTrace(t, "--snapshot", "--pidns", fmt.Sprint(ns.Holder))
	exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "true").Run()
	lines := s.stop(t, syscall.SIGINT)
	if len(lines) < 2 || lines[0].Type != "proc" || lines[0].PID != uint32(ns.Holder) || !slices.Equal(lines[0].Args, []string{"sleep", "3600"}) {
		t.Fatalf("want the holder's proc line first, got %+v", lines)
	}
	wantProc(t, lines[0], ns.Holder)
	for _, l := range lines[1:] {
		if l.Type == "proc" {
			t.Errorf("proc line after the events began: %+v", l)
		}
	}
}

// ownCgroup is this test's cgroup in the hierarchy nspidtrace reads.
func ownCgroup(t *testing.T) string {
	t.Helper()
	h, err := loader.Hierarchy()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		// ID:CONTROLLERS:PATH; v2's line has no controllers.
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && (h.Controller == "" && f[1] == "" || h.Controller != "" && slices.Contains(strings.Split(f[1], ","), h.Controller)) {
			return f[2]
		}
	}
	t.Fatalf("no %s line in /proc/self/cgroup", h)
	return ""
}

// cgroupDir is where docker puts container id's processes: cgroup v1 has a
// pids hierarchy of its own, v2 one unified tree.
func cgroupDir(id string) string {
	if data, _ := os.ReadFile("/proc/self/cgroup"); strings.Contains(string(data), ":pids:") {
		return "/sys/fs/cgroup/pids/docker/" + id
	}
	return "/sys/fs/cgroup/docker/" + id
}

// fakeContainer puts the processes of a new pid namespace into the cgroup
// docker would make for container id (/docker/ID), removed at cleanup.
func fakeContainer(t *testing.T, id string) testenv.PidNS {
	t.Helper()
	ns := testenv.NewPidNS(t)
	dir := cgroupDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("kill", "-9", fmt.Sprint(ns.Holder)).Run()
		for range 50 {
			if os.Remove(dir) == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := os.WriteFile(dir+"/cgroup.procs", []byte(fmt.Sprint(ns.Holder)), 0o644); err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestContainerSelection(t *testing.T) {
	testenv.Require(t)
	const id = "9f3c2a1b339c6d9b7dbe6a64ac9ffe4fd8a5e8a7f2c3d1e0b9a8c7d6e5f40312"
	ns := fakeContainer(t, id)
	// A shell that joins the container's pid namespace and cgroup, as
	// docker exec does, is a root of its own beside the init.
	joined := exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sh", "-c",
		`echo $$ > "$1/cgroup.procs" && exec sleep 5`, "sh", cgroupDir(id))
	if err := joined.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { joined.Process.Kill(); joined.Wait() }()
	joinedSleep := testenv.WaitChild(t, joined.Process.Pid)
	time.Sleep(100 * time.Millisecond) // until it has exec'd sleep

	// nsenter alone enters the namespace but not the container's cgroup:
	// tree --pidns shows it beside the docker exec-like shell, and says so.
	plain := exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sleep", "5")
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { plain.Process.Kill(); plain.Wait() }()
	plainSleep := testenv.WaitChild(t, plain.Process.Pid)
	time.Sleep(100 * time.Millisecond)
	stdout, stderr, code := runBinary(t, "tree", "--pidns", fmt.Sprintf("pid:[%d]", ns.Inode))
	short := id[:12]
	// The container's processes are root with every capability and no
	// no_new_privs: what --cap-add SYS_ADMIN makes, and a finding.
	wantNS := fmt.Sprintf("sleep(1, host %d) [pid:[%d]] [container %s] [! privilege-gain]\n"+
		"sleep(2, host %d) [pid:[%d]] [container %s] [entered from nsenter(%d)] [! privilege-gain]\n"+
		"sleep(3, host %d) [pid:[%d]] [entered from nsenter(%d); not in its init's cgroup]\n",
		ns.Holder, ns.Inode, short, joinedSleep, ns.Inode, short, joined.Process.Pid, plainSleep, ns.Inode, plain.Process.Pid)
	if code != exitOK || stdout != wantNS {
		t.Errorf("tree --pidns of the container: exit %d %s\n got %q\nwant %q", code, stderr, stdout, wantNS)
	}

	// tree --container: the container's processes, and the one that only
	// shares its pid namespace, marked.
	stdout, stderr, code = runBinary(t, "tree", "--container", id[:12])
	hostCgroup := ownCgroup(t)
	if want := fmt.Sprintf("sleep(1, host %d) [pid:[%d]] [! privilege-gain]\n"+
		"sleep(2, host %d) [pid:[%d]] [entered from nsenter(%d)] [! privilege-gain]\n"+
		"sleep(3, host %d) [pid:[%d]] [in %s's pid namespace, cgroup %s] [entered from nsenter(%d); not in its init's cgroup]\n",
		ns.Holder, ns.Inode, joinedSleep, ns.Inode, joined.Process.Pid,
		plainSleep, ns.Inode, short, hostCgroup, plain.Process.Pid); code != exitOK || stdout != want {
		t.Errorf("tree --container: exit %d %s\n got %q\nwant %q", code, stderr, stdout, want)
	}
	if l := procJSON(t, "--container", id, "1"); l.PID != uint32(ns.Holder) {
		t.Errorf("--container %s 1: host PID %d, want %d", id[:12], l.PID, ns.Holder)
	}
	// trace --container: what happens inside, nothing from outside.
	s := startTrace(t, "--container", id[:12])
	exec.Command("sh", "-c", "exit 5").Run()
	exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sh", "-c", "exit 6").Run()
	lines := s.stop(t, syscall.SIGINT)
	sawInside := false
	for _, l := range lines {
		if !slices.Contains(l.PidNS, ns.Inode) {
			t.Errorf("trace --container: a line from outside: %+v", l)
		}
		sawInside = sawInside || (l.Type == "exit" && l.ExitCode == 6)
	}
	if !sawInside {
		t.Error("trace --container: the exit inside the container is missing")
	}

	// An ID no container has, and a name (not an ID): neither is a bad
	// namespace reference, both are "no running container matches".
	for _, arg := range []string{"ffff", "no-such-container-name"} {
		_, stderr, code := runBinary(t, "tree", "--container", arg)
		if code != exitNotFound || !strings.Contains(stderr, "no running container matches") || strings.Contains(stderr, "namespace reference") {
			t.Errorf("--container %s: exit %d, want %d saying no running container matches: %s", arg, code, exitNotFound, stderr)
		}
	}
}

// startTicks reads a process's start from /proc/PID/stat, in clock ticks
// since boot (field 22).
func startTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the comm, which may hold spaces and parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	n, _ := strconv.ParseUint(fields[19], 10, 64)
	return n
}

// TestKeysAreTheKernels checks a process key and its parent's key against
// the start times in the host's /proc (to its 10 ms clock tick).
func TestKeysAreTheKernels(t *testing.T) {
	testenv.Require(t)
	l := procJSON(t, strconv.Itoa(os.Getpid()))
	parent := procJSON(t, strconv.Itoa(os.Getppid()))
	var pid uint32
	var start uint64
	if _, err := fmt.Sscanf(l.Key, "%d@%d", &pid, &start); err != nil || pid != uint32(os.Getpid()) {
		t.Fatalf("key %q does not name PID %d (%v)", l.Key, os.Getpid(), err)
	}
	ticks := startTicks(t, os.Getpid()) // USER_HZ: 100 a second
	if diff := int64(start/10_000_000) - int64(ticks); diff < -1 || diff > 1 {
		t.Errorf("key %q starts at tick %d, /proc/PID/stat says %d", l.Key, start/10_000_000, ticks)
	}
	if l.PKey != parent.Key || parent.Key == "" {
		t.Errorf("pkey %q, the parent's key %q", l.PKey, parent.Key)
	}
	when, err := time.Parse(time.RFC3339Nano, l.Start)
	if err != nil || time.Since(when) > time.Hour || time.Since(when) < 0 {
		t.Errorf("start %q (%v) is not this test's start", l.Start, err)
	}
}

// runBinaryEnv is runBinary with extra environment variables.
func runBinaryEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// sameFromProcAndKernel checks that `nspidtrace PID` (and with
// --ancestors) answered from /proc alone prints, byte for byte, what the
// kernel's task iterator gives: the fast path of procfs.Lineage must not
// change an answer. It fails when /proc did not answer.
func sameFromProcAndKernel(t *testing.T, pid int) {
	t.Helper()
	for _, extra := range [][]string{nil, {"--ancestors"}, {"-o", "wide"}} {
		args := append(slices.Clone(extra), "--log-level", "debug", strconv.Itoa(pid))
		fast, fastErr, code := runBinary(t, args...)
		if code != exitOK || !strings.Contains(fastErr, "answered from /proc") {
			t.Fatalf("nspidtrace %s: exit %d, not answered from /proc: %s", strings.Join(args, " "), code, fastErr)
		}
		kernel, kernelErr, code := runBinaryEnv(t, []string{query.KernelOnlyEnv + "=1"}, args...)
		if code != exitOK || strings.Contains(kernelErr, "answered from /proc") {
			t.Fatalf("%s=1 nspidtrace %s: exit %d: %s", query.KernelOnlyEnv, strings.Join(args, " "), code, kernelErr)
		}
		if fast != kernel {
			t.Errorf("nspidtrace %s: /proc and the task iterator differ\n/proc:\n%s\niterator:\n%s", strings.Join(args, " "), fast, kernel)
		}
	}
}

// TestPIDFromProcIsTheKernels compares the two ways `nspidtrace <pid>`
// answers, for processes 0 to 32 pid namespaces deep (a namespace's init
// and a process forked inside it), and for a process nsenter put into a
// namespace from outside, whose init is no ancestor of it.
func TestPIDFromProcIsTheKernels(t *testing.T) {
	testenv.Require(t)
	for _, depth := range []int{0, 1, 2, 5, 31, 32} {
		t.Run(fmt.Sprintf("depth%d", depth), func(t *testing.T) {
			var argv []string
			for range depth {
				argv = append(argv, "unshare", "--pid", "--fork")
			}
			argv = append(argv, "sh", "-c", "sleep 30 & wait")
			cmd := exec.Command(argv[0], argv[1:]...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			var sh, sleep int
			waitFor(t, "the chain", func() bool {
				pids, _ := procfs.Descendants(procfs.ProcRoot, cmd.Process.Pid)
				sh, sleep = 0, 0
				for _, p := range pids {
					comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
					switch strings.TrimSpace(string(comm)) {
					case "sh":
						sh = int(p)
					case "sleep":
						sleep = int(p)
					}
				}
				return sh != 0 && sleep != 0
			})
			for _, pid := range []int{sh, sleep} {
				sameFromProcAndKernel(t, pid)
			}
			out, _, _ := runBinary(t, strconv.Itoa(sleep))
			if rows := strings.Count(out, "\n"); rows != depth+4 { // comm, user, header, levels
				t.Errorf("sleep %d levels deep: %d rows\n%s", depth, rows, out)
			}
		})
	}

	t.Run("nsenter", func(t *testing.T) {
		inner := testenv.NewPidNS(t).Holder
		enter := exec.Command("nsenter", "-t", strconv.Itoa(inner), "--pid", "sh", "-c", "sleep 30 & wait")
		if err := enter.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { enter.Process.Kill(); enter.Wait() })
		var sh, sleep int
		waitFor(t, "the entered sh and its sleep", func() bool {
			pids, _ := procfs.Descendants(procfs.ProcRoot, enter.Process.Pid)
			for _, p := range pids {
				switch comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) {
				case "sh":
					sh = int(p)
				case "sleep":
					sleep = int(p)
				}
			}
			return sh != 0 && sleep != 0
		})
		sameFromProcAndKernel(t, sh)
		sameFromProcAndKernel(t, sleep)
		// nsenter joins no cgroup: the init's is not sh's only when the
		// test runs in another cgroup than NewPidNS's holder, so the
		// cgroup clause is not asked for.
		ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", inner))
		if err != nil {
			t.Fatal(err)
		}
		if out, _, _ := runBinary(t, strconv.Itoa(sh)); !strings.Contains(out, fmt.Sprintf("entered %s from nsenter(%d)", ns, enter.Process.Pid)) {
			t.Errorf("the entered sh is not said to have entered from nsenter(%d):\n%s", enter.Process.Pid, out)
		}
	})
}

// TestLongArgvIsMarked: argv longer than the 1,024 bytes kept is cut, and
// every output says so: args_truncated in JSON (as trace lines have it),
// a marker in text, from /proc and from the kernel alike.
func TestLongArgvIsMarked(t *testing.T) {
	testenv.Require(t)
	long := strings.Repeat("x", 100)
	args := []string{"-c", "sleep 30; : \"$@\"", "sh"}
	for range 30 {
		args = append(args, long)
	}
	cmd := exec.Command("sh", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := strconv.Itoa(cmd.Process.Pid)
	time.Sleep(100 * time.Millisecond)
	if out, _, _ := runBinary(t, pid, "-o", "json"); !strings.Contains(out, `"args_truncated":true`) {
		t.Errorf("<pid> -o json: %.300s", out)
	}
	for _, env := range [][]string{nil, {query.KernelOnlyEnv + "=1"}} {
		out, _, _ := runBinaryEnv(t, env, pid)
		first, _, _ := strings.Cut(out, "\n")
		if !strings.HasSuffix(first, long[:10]+" …[truncated]") {
			t.Errorf("%v <pid>: first line ends %q", env, first[max(0, len(first)-40):])
		}
	}
	if out, _, _ := runBinary(t, "tree", "-a", pid); !strings.Contains(out, " …[truncated]") {
		t.Errorf("tree -a: %.300s", out)
	}
}
