package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes a test binary run a storm instead of its tests: TestMain
// calls RunHelperIfAsked first.
const helperEnv = "NSPIDTRACE_STORM"

// RunHelperIfAsked runs the storm named in the environment and exits, or
// returns at once when the process is an ordinary test binary.
//
// "forkexit N": N processes that exit at once, without exec: the fastest
// way this machine makes events. "forkexec N": N runs of /bin/true.
// Either prints its rate, processes per second, on stdout.
// "subreaper N": become a child subreaper, start a grandchild that sleeps N
// seconds and orphan it, then wait N seconds: the grandchild is ours.
func RunHelperIfAsked() {
	mode, arg, ok := strings.Cut(os.Getenv(helperEnv), " ")
	if !ok {
		return
	}
	n, err := strconv.Atoi(arg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(2)
	}
	if mode == "hold" {
		// n children that sleep until killed with the process group.
		for range n {
			if err := forkPause(); err != nil {
				fmt.Fprintln(os.Stderr, "hold:", err)
				os.Exit(1)
			}
		}
		fmt.Println("ready")
		os.Stdin.Read(make([]byte, 1))
		os.Exit(0)
	}
	if mode == "subreaper" {
		const prSetChildSubreaper = 36
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			fmt.Fprintln(os.Stderr, "prctl:", errno)
			os.Exit(1)
		}
		exec.Command("sh", "-c", fmt.Sprintf("sleep %d & exit 0", n)).Run()
		time.Sleep(time.Duration(n) * time.Second)
		os.Exit(0)
	}
	start := time.Now()
	for range n {
		var pid int
		switch mode {
		case "forkexit":
			pid, err = forkExit()
		case "forkexec":
			pid, err = syscall.ForkExec("/bin/true", []string{"true"}, &syscall.ProcAttr{})
		default:
			err = fmt.Errorf("unknown mode %q", mode)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "storm:", err)
			os.Exit(1)
		}
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
			fmt.Fprintln(os.Stderr, "storm: wait:", err)
			os.Exit(1)
		}
	}
	fmt.Println(float64(n) / time.Since(start).Seconds())
	os.Exit(0)
}

// forkExit creates a process that exits at once, as vfork(2) followed by
// _exit(2) would: the child shares our memory only until it exits, and
// runs nothing but the exit system call (as the syscall package's own
// fork-and-exec does with CLONE_VFORK).
//
//go:nosplit
func forkExit() (int, error) {
	r1, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.CLONE_VM|syscall.CLONE_VFORK|syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if r1 == 0 {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	return int(r1), nil
}

// forkPause creates a process, as fork(2) does, that sleeps in pause(2)
// until it is killed, running nothing else.
//
//go:nosplit
func forkPause() error {
	r1, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 {
		return errno
	}
	if r1 == 0 {
		for {
			syscall.RawSyscall(syscall.SYS_PAUSE, 0, 0, 0)
		}
	}
	return nil
}

// Hold starts n processes that sleep until t's cleanup kills them.
func Hold(t testing.TB, n int) {
	t.Helper()
	cmd := Helper("hold", n)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		stdin.Close()
		cmd.Wait()
	})
	if _, err := out.Read(make([]byte, 6)); err != nil {
		t.Fatalf("hold %d: %v", n, err)
	}
}

// PidNS is a fresh pid namespace, kept alive by a process waiting in it.
type PidNS struct {
	Inode  uint32 // the namespace's inode
	Holder int    // host PID of the process inside it, PID 1 there
}

// NewPidNS creates a pid namespace for t, removed at cleanup. Extra unshare
// flags such as "--net" give the holder more namespaces of its own, as a
// container's init has.
func NewPidNS(t testing.TB, unshareFlags ...string) PidNS {
	t.Helper()
	holder := StartInNewPidNS(t, unshareFlags, "sleep", "3600")
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/pid", holder), &st); err != nil {
		t.Fatal(err)
	}
	return PidNS{Inode: uint32(st.Ino), Holder: holder}
}

// StartInNewPidNS runs argv as PID 1 of a new pid namespace (created by
// `unshare --pid --fork` with unshareFlags added), killed at cleanup, and
// returns its host PID once it runs argv[0]: a test that starts tracing
// then sees none of its start-up.
func StartInNewPidNS(t testing.TB, unshareFlags []string, argv ...string) int {
	t.Helper()
	args := append(append([]string{"--pid", "--fork", "--kill-child"}, unshareFlags...), argv...)
	cmd := exec.Command("unshare", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	child := WaitChild(t, cmd.Process.Pid)
	want := filepath.Base(argv[0])
	if len(want) > 15 {
		want = want[:15] // the kernel's comm
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
		if strings.TrimSpace(string(comm)) == want && blockedAfterExec(child) {
			return child
		}
		if time.Now().After(deadline) {
			t.Fatalf("PID 1 of the new namespace runs %q, not %s", comm, want)
		}
	}
}

// blockedAfterExec reports whether pid is blocked in a system call other
// than execve. The new comm shows before the kernel reports the exec
// (sched_process_exec): a tracer started in between would see the exec.
// Once the new program blocks (sleep in clock_nanosleep), it is over.
func blockedAfterExec(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return false
	}
	nr, _, _ := strings.Cut(string(data), " ")
	n, err := strconv.Atoi(strings.TrimSpace(nr))
	return err == nil && n >= 0 && n != unix.SYS_EXECVE && n != unix.SYS_EXECVEAT
}

// WaitChild returns the host PID of pid's first child, waiting for it.
func WaitChild(t testing.TB, pid int) int {
	t.Helper()
	children := fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		data, err := os.ReadFile(children)
		first, _, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
		if child, _ := strconv.Atoi(first); err == nil && child != 0 {
			return child
		}
	}
	t.Fatalf("process %d started no child", pid)
	return 0
}

// Helper returns a command that runs the helper mode with argument n.
func Helper(mode string, n int) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", helperEnv, mode, n))
	return cmd
}

// Storm runs mode ("forkexit" or "forkexec") n times in a new process, in
// pid namespace ns when ns is not nil, and returns the storm's rate in
// processes per second. In a namespace of its own, the storm's events are
// exactly StormEvents(mode, n).
func Storm(t testing.TB, ns *PidNS, mode string, n int) float64 {
	t.Helper()
	var cmd *exec.Cmd
	if ns != nil {
		cmd = exec.Command("nsenter", "--target", strconv.Itoa(ns.Holder), "--pid", "--", os.Args[0])
	} else {
		cmd = exec.Command(os.Args[0])
	}
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", helperEnv, mode, n))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("storm %s %d: %v", mode, n, err)
	}
	rate, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		t.Fatalf("storm printed %q", out)
	}
	return rate
}

// StormEvents is how many events a storm run by Storm in a namespace of its
// own causes there: the helper's fork (by nsenter), exec and exit, and for
// each of its n children a fork and an exit, and an exec for forkexec.
func StormEvents(mode string, n int) int {
	perChild := 2
	if mode == "forkexec" {
		perChild = 3
	}
	return 3 + perChild*n
}
