package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// runMemfdExecHelper copies the program in argv[1] into a memfd and
// executes it with the rest of argv, as fileless malware does (fexecve).
func runMemfdExecHelper() {
	fd, err := unix.MemfdCreate("payload", unix.MFD_CLOEXEC)
	if err == nil {
		var data []byte
		if data, err = os.ReadFile(os.Args[1]); err == nil {
			_, err = unix.Write(fd, data)
		}
	}
	if err == nil {
		// execveat(fd, "", argv, envp, AT_EMPTY_PATH): fexecve(3).
		var empty *byte
		var argv []*byte
		if empty, err = unix.BytePtrFromString(""); err == nil {
			argv, err = syscall.SlicePtrFromStrings(os.Args[1:])
		}
		if err == nil {
			envp := []*byte{nil}
			_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
				uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
			err = errno
		}
	}
	fmt.Fprintln(os.Stderr, "memfd exec:", err)
	os.Exit(1)
}

// processFindings gathers, by key, the finding names lines say each
// process has.
func processFindings(lines []line) map[string][]string {
	found := map[string][]string{}
	for _, l := range lines {
		for _, f := range l.Findings {
			if !slices.Contains(found[l.Key], f.Name) {
				found[l.Key] = append(found[l.Key], f.Name)
			}
		}
	}
	return found
}

// TestFindingsOnRealBehaviour runs, for real, what each finding describes,
// and checks that the finding is on that process and on none of the
// others the test started (a churn of ordinary processes among them), in
// a recording and in the recording read back; live, tree --flagged shows a
// fileless process that is still running, and <pid> says why.
func TestFindingsOnRealBehaviour(t *testing.T) {
	testenv.Require(t)
	testenv.Docker(t)
	dir := t.TempDir()
	recPath := filepath.Join(dir, "rec.ndjson")
	rec := startRecord(t, recPath)
	live := startTrace(t, "--flagged")

	// The processes each finding must be on, by host PID.
	want := map[uint32][]string{}
	run := func(name string, cmd *exec.Cmd) int {
		t.Helper()
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd.Process.Pid
	}

	// fileless: a memfd executed; it stays up for the live checks.
	memfd := exec.Command(os.Args[0], "/bin/sleep", "10")
	memfd.Env = append(os.Environ(), "NSPIDTRACE_TEST_HELPER=memfd-exec")
	memfdPID := run("memfd exec", memfd)
	// masquerade: exec -a with a kernel thread's name.
	masq := exec.Command("bash", "-c", "exec -a '[kworker/0:9]' sleep 2")
	masqPID := run("exec -a", masq)
	// privilege-gain: a set-user-ID root copy of sleep, run as nobody.
	suidDir, err := os.MkdirTemp("", "nspidtrace-suid") // nobody must reach it: not under t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(suidDir) })
	os.Chmod(suidDir, 0o755)
	suid := filepath.Join(suidDir, "suid-sleep")
	if data, err := os.ReadFile("/bin/sleep"); err != nil || os.WriteFile(suid, data, 0o755) != nil || os.Chmod(suid, 0o755|os.ModeSetuid) != nil {
		t.Fatalf("set-user-ID copy: %v", err)
	}
	gain := exec.Command(suid, "2")
	gain.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	gainPID := run("set-user-ID", gain)
	// A churn of ordinary processes: a shell loop and a Go build.
	loop := exec.Command("sh", "-c", `for i in $(seq 30); do ls / >/dev/null; cat /etc/hostname >/dev/null; echo x | grep -q x; env true; done`)
	loopPID := run("shell loop", loop)
	src := filepath.Join(dir, "build")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module churn\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(1) }\n"), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "churn"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOCACHE="+filepath.Join(dir, "gocache"), "GOFLAGS=-mod=mod")
	buildPID := run("go build", build)
	time.Sleep(300 * time.Millisecond)
	want[uint32(memfdPID)] = []string{"fileless"}
	want[uint32(masqPID)] = []string{"masquerade"}
	want[uint32(gainPID)] = []string{"privilege-gain"}

	// Containers: a docker exec'd process is entered; a refused setns
	// from inside one is an escape attempt, and so is a setns into the
	// host's network namespace from one that may; unshare -U -r inside
	// one makes root in a new user namespace.
	plain := uniqueName("findings")
	testenv.RemoveTestContainer(t, plain)
	testenv.DockerRun(t, []string{"--name", plain}, "sleep", "60")
	testenv.DockerCmd(t, "exec", "-d", plain, "sleep", "3")
	userns := uniqueName("findings-userns")
	testenv.RemoveTestContainer(t, userns)
	testenv.DockerRun(t, []string{"--name", userns, "--security-opt", "seccomp=unconfined"}, "sleep", "60")
	testenv.DockerCmd(t, "exec", userns, "unshare", "-U", "-r", "true")
	escape := uniqueName("findings-escape")
	testenv.RemoveTestContainer(t, escape)
	testenv.DockerRun(t, []string{"--name", escape, "--pid", "host", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE", "--security-opt", "seccomp=unconfined"}, "sleep", "60")
	testenv.DockerCmd(t, "exec", escape, "nsenter", "-t", "2", "-n", "true")
	// The kernel refuses setns to one without CAP_SYS_ADMIN (seccomp's
	// refusal, Docker's default, stops it before the kernel sees a call).
	refused := uniqueName("findings-refused")
	testenv.RemoveTestContainer(t, refused)
	testenv.DockerRun(t, []string{"--name", refused, "--pid", "host", "--cap-add", "SYS_PTRACE", "--security-opt", "seccomp=unconfined"}, "sleep", "60")
	if out, err := exec.Command("docker", "exec", refused, "nsenter", "-t", "2", "-n", "true").CombinedOutput(); err == nil {
		t.Fatalf("nsenter into the host's network namespace without CAP_SYS_ADMIN worked: %s", out)
	}

	// Live: the memfd process, still running, is in tree --flagged with
	// its ancestors, and the churn is not; <pid> says why.
	out, stderr, code := runBinary(t, "tree", "--flagged", "-o", "json")
	if code != exitOK {
		t.Fatalf("tree --flagged: exit %d: %s", code, stderr)
	}
	shown := map[int]line{}
	for _, l := range jsonLines(t, out) {
		shown[int(l.PID)] = l
	}
	if l, ok := shown[memfdPID]; !ok || len(l.Findings) == 0 || l.Findings[0].Name != "fileless" || l.Exe != "memfd" {
		t.Errorf("tree --flagged: the memfd process %d is missing or unflagged: %+v", memfdPID, l)
	}
	if _, ok := shown[os.Getpid()]; !ok {
		t.Errorf("tree --flagged: the memfd process's ancestor %d (this test) is not shown", os.Getpid())
	}
	if l, ok := shown[loopPID]; ok {
		t.Errorf("tree --flagged shows the shell loop: %+v", l)
	}
	text, _, _ := runBinary(t, strconv.Itoa(memfdPID))
	if !strings.Contains(text, "finding fileless: runs a memfd") && !strings.Contains(text, "finding fileless: executed a memfd") {
		t.Errorf("nspidtrace %d does not say it is fileless:\n%s", memfdPID, text)
	}

	for _, cmd := range []*exec.Cmd{masq, gain, loop, build} {
		cmd.Wait()
	}
	time.Sleep(500 * time.Millisecond)
	liveLines := live.stop(t, syscall.SIGINT)
	rec.Process.Signal(syscall.SIGINT)
	rec.Wait()
	recorded := readLines(t, recPath)

	// The processes the test started on the host, by key (a PID may be
	// another's by now on a busy machine): those it forked, and by fork
	// lines the churn's descendants; and the findings each must have.
	ours, wantKey := map[string]bool{}, map[string][]string{}
	started := map[uint32]bool{}
	for _, pid := range []int{memfdPID, masqPID, gainPID, loopPID, buildPID} {
		started[uint32(pid)] = true
	}
	churn := 0
	for _, l := range recorded {
		switch {
		case l.Type == "fork" && started[l.PID] && l.PPID == uint32(os.Getpid()):
			ours[l.Key] = true
			if w := want[l.PID]; w != nil {
				wantKey[l.Key] = w
			}
		case l.Type == "fork" && ours[l.PKey]:
			ours[l.Key] = true
			churn++
		}
	}
	if len(wantKey) != len(want) {
		t.Fatalf("the recording has the fork of %d of the %d processes with findings", len(wantKey), len(want))
	}
	// What the processes docker exec started must show, by the comm of
	// the program they ended in; no container process is fileless or a
	// masquerade (runc re-executes itself on the way in).
	byContainer := map[string]map[string][]string{
		plain:   {"sleep": {"entered"}},
		refused: {"nsenter": {"ns-escape-attempt"}},
		userns:  {"true": {"entered", "new-userns-root"}},
		escape:  {"true": {"ns-escape-attempt"}}, // --pid host: no pid namespace to enter
	}
	check := func(what string, lines []line) {
		t.Helper()
		found := processFindings(lines)
		last := map[string]line{}
		for _, l := range lines {
			if l.Key != "" {
				last[l.Key] = l
			}
		}
		flaggedChurn := 0
		seen := map[string]int{}
		for key, l := range last {
			names := found[key]
			switch {
			case wantKey[key] != nil:
				seen[l.Comm]++
				if !slices.Equal(names, wantKey[key]) {
					t.Errorf("%s: %s(%d) has findings %v, want %v", what, l.Comm, l.PID, names, wantKey[key])
				}
			case ours[key] && len(names) > 0:
				flaggedChurn++
				t.Errorf("%s: %s(%d), started by the test, has findings %v", what, l.Comm, l.PID, names)
			case l.Container != nil && byContainer[l.Container.Name] != nil:
				if w, ok := byContainer[l.Container.Name][l.Comm]; ok && !l.NSInit {
					seen[l.Container.Name+"/"+l.Comm]++
					if !subset(w, names) {
						t.Errorf("%s: %s(%d) in %s has findings %v, want %v", what, l.Comm, l.PID, l.Container.Name, names, w)
					}
				}
				if slices.Contains(names, "fileless") || slices.Contains(names, "masquerade") {
					t.Errorf("%s: %s(%d) in %s: %v", what, l.Comm, l.PID, l.Container.Name, names)
				}
			}
		}
		for c, byComm := range byContainer {
			for comm := range byComm {
				if seen[c+"/"+comm] == 0 {
					t.Errorf("%s: no %s process in container %s", what, comm, c)
				}
			}
		}
		for key, names := range wantKey {
			if _, ok := last[key]; !ok {
				t.Errorf("%s: no line about process %s, which should have %v", what, key, names)
			}
		}
		t.Logf("%s: %d processes of churn, %d flagged", what, churn, flaggedChurn)
	}
	check("recorded live", recorded)
	// unshare -U changed the credentials, not the exec of true after it
	// (whose cred line, if any, pidmap.Follower writes from what it knew).
	for _, l := range recorded {
		if l.Type == "cred" && l.Syscall == "execve" && l.Container != nil && l.Container.Name == userns {
			t.Errorf("a cred line for an exec after unshare -U: %+v", l)
		}
	}

	// Read back: the same findings, judged again from the events.
	replayed, stderr, code := runBinary(t, "--from", recPath, "trace", "--flagged")
	if code != exitOK {
		t.Fatalf("trace --from --flagged: exit %d: %s", code, stderr)
	}
	check("replayed", jsonLines(t, replayed))
	// The live --flagged trace holds only flagged lines, the expected
	// processes among them.
	for _, l := range liveLines {
		if len(l.Findings) == 0 && l.Type != "lost" {
			t.Errorf("trace --flagged wrote an unflagged line: %+v", l)
		}
	}
	liveFound := processFindings(liveLines)
	for _, l := range liveLines {
		if w := wantKey[l.Key]; w != nil && !slices.Equal(liveFound[l.Key], w) {
			t.Errorf("trace --flagged: %s(%d) has %v, want %v", l.Comm, l.PID, liveFound[l.Key], w)
		}
	}
}

func subset(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
