package main

// End-to-end tests: they build the nspidtrace binary and run it as a user
// would. The privileged ones start real processes in nested pid namespaces
// and compare every event with what the host's /proc says.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

var binPath string

func TestMain(m *testing.M) {
	testenv.RunHelperIfAsked()
	switch os.Getenv("NSPIDTRACE_TEST_HELPER") {
	case "seccomp":
		runSeccompHelper()
		return
	case "threads":
		runThreadsHelper()
		return
	case "memfd-exec":
		runMemfdExecHelper()
		return
	case "threads-hold":
		// Extra threads until stdin closes.
		for range 2 {
			go func() {
				runtime.LockOSThread()
				select {}
			}()
		}
		time.Sleep(100 * time.Millisecond)
		fmt.Println("ready")
		os.Stdin.Read(make([]byte, 1))
		return
	}
	dir, err := os.MkdirTemp("", "nspidtrace-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Readable by the unprivileged user of TestUnprivileged.
	os.Chmod(dir, 0o755)
	binPath = filepath.Join(dir, "nspidtrace")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build nspidtrace: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runThreadsHelper is a process with four extra threads that live a moment.
func runThreadsHelper() {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // exits the thread with the goroutine
			time.Sleep(300 * time.Millisecond)
		}()
	}
	wg.Wait()
}

// line is one NDJSON line of the feed.
type line struct {
	Cred        *credJSON `json:"cred"`
	OldCred     *credJSON `json:"old_cred"`
	Syscall     string    `json:"syscall"`
	CredChanged []string  `json:"cred_changed"`

	Time       string            `json:"time"`
	Type       string            `json:"type"`
	Host       string            `json:"host"`
	PID        uint32            `json:"pid"`
	TID        uint32            `json:"tid"`
	PPID       uint32            `json:"ppid"`
	NSPid      []uint32          `json:"nspid"`
	PidNS      []uint32          `json:"pidns"`
	NSPPid     []uint32          `json:"nsppid"`
	Comm       string            `json:"comm"`
	Filename   string            `json:"filename"`
	Args       []string          `json:"args"`
	NS         map[string]uint32 `json:"ns"`
	Thread     bool              `json:"thread"`
	ExitCode   int               `json:"exit_code"`
	Signal     int               `json:"signal"`
	CoreDumped bool              `json:"core_dumped"`
	NSType     []string          `json:"nstype"`
	Flags      []string          `json:"flags"`
	Ret        int64             `json:"ret"`
	Changed    map[string]struct {
		From uint32 `json:"from"`
		To   uint32 `json:"to"`
	} `json:"changed"`
	Count      uint64 `json:"count"`
	OldComm    string `json:"old_comm"`
	SignalName string `json:"signal_name"`
	Result     string `json:"result"`
	Sender     struct {
		PID   uint32   `json:"pid"`
		NSPid []uint32 `json:"nspid"`
		Comm  string   `json:"comm"`
		Key   string   `json:"key"`
	} `json:"sender"`
	EnteredBy string `json:"entered_by"`
	Outside   bool   `json:"outside_init_cgroup"`
	Exe       string `json:"exe"`
	Findings  []struct {
		Name   string `json:"name"`
		Time   string `json:"time"`
		Reason string `json:"reason"`
	} `json:"findings"`
	Cgroup    string `json:"cgroup"`
	AttrError string `json:"attribution_error"`
	Container *struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Runtime string `json:"runtime"`
		Pod     *struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
			UID       string `json:"uid"`
		} `json:"pod"`
	} `json:"container"`
	NSInit    bool   `json:"ns_init"`
	Start     string `json:"start"`
	Key       string `json:"key"`
	PKey      string `json:"pkey"`
	Ancestors []struct {
		PID   uint32 `json:"pid"`
		NSPid uint32 `json:"nspid"`
		Comm  string `json:"comm"`
		Key   string `json:"key"`
	} `json:"ancestors"`
}

// session is a running `nspidtrace trace`.
type session struct {
	cmd    *exec.Cmd
	out    string
	stderr *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTrace runs `nspidtrace trace args...` with stdout to a file and
// returns once the programs are attached.
func startTrace(t testing.TB, args ...string) *session {
	t.Helper()
	s := &session{out: filepath.Join(t.TempDir(), "trace.ndjson"), stderr: &syncBuffer{}}
	f, err := os.Create(s.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s.cmd = exec.Command(binPath, append([]string{"trace"}, args...)...)
	s.cmd.Stdout = f
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.stderr.String(), "tracing started") {
		if time.Now().After(deadline) {
			t.Fatalf("trace did not start: %s", s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// stop ends the trace with sig, checks it exits 0, and returns its lines.
func (s *session) stop(t testing.TB, sig syscall.Signal) []line {
	t.Helper()
	s.cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("trace ended with %v; stderr:\n%s", err, s.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("trace did not stop on %v", sig)
	}
	return readLines(t, s.out)
}

func readLines(t testing.TB, path string) []line {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line is not JSON: %v: %s", err, sc.Text())
		}
		if l.Type == "lost" {
			t.Errorf("the kernel lost %d events", l.Count)
		}
		lines = append(lines, l)
	}
	return lines
}

// subtree returns the lines whose subject descends from root, following
// fork events in feed order.
func subtree(lines []line, root int) []line {
	in := map[uint32]bool{uint32(root): true}
	var out []line
	for _, l := range lines {
		if l.Type == "fork" && in[l.PPID] {
			in[l.PID] = true
		}
		if in[l.PID] {
			out = append(out, l)
		}
	}
	return out
}

// readTruth reads /proc for root and its descendants: the kernel's truth.
func readTruth(t *testing.T, root int) map[uint32]*events.Event {
	t.Helper()
	pids, err := procfs.Descendants(procfs.ProcRoot, root)
	if err != nil {
		t.Fatal(err)
	}
	truth := make(map[uint32]*events.Event)
	for _, pid := range pids {
		ev := new(events.Event)
		if err := procfs.ReadProc(procfs.ProcRoot, int(pid), ev); err != nil {
			t.Fatalf("read /proc/%d: %v", pid, err)
		}
		truth[pid] = ev
	}
	return truth
}

// compareWithProc checks a line's process fields against /proc's truth;
// pidForChildren is what pid_for_children was when the event happened.
func compareWithProc(t *testing.T, l line, truth *events.Event, pidForChildren uint32) {
	t.Helper()
	what := fmt.Sprintf("%s of %d (%s)", l.Type, l.PID, l.Comm)
	if !slices.Equal(l.NSPid, truth.NSPid[:truth.Levels]) {
		t.Errorf("%s: nspid %v, /proc NStgid %v", what, l.NSPid, truth.NSPid[:truth.Levels])
	}
	if !slices.Equal(l.PidNS, truth.PidNS[:truth.Levels]) {
		t.Errorf("%s: pidns %v, /proc %v", what, l.PidNS, truth.PidNS[:truth.Levels])
	}
	if !slices.Equal(l.NSPPid, truth.NSPPid[:truth.Levels]) {
		t.Errorf("%s: nsppid %v, /proc parent's NStgid %v", what, l.NSPPid, truth.NSPPid[:truth.Levels])
	}
	if l.PPID != truth.PPID {
		t.Errorf("%s: ppid %d, /proc PPid %d", what, l.PPID, truth.PPID)
	}
	for k, name := range events.NSNames {
		want := truth.NS[k]
		if events.NSKind(k) == events.NSPidForChildren {
			want = pidForChildren
		}
		if l.NS[name] != want {
			t.Errorf("%s: ns %s %d, /proc/%d/ns/%s %d", what, name, l.NS[name], l.PID, name, want)
		}
	}
}

// checkLifecycle checks that every process in truth has exactly one fork,
// exec and exit line, each equal to /proc, and returns the exit lines.
func checkLifecycle(t *testing.T, lines []line, truth map[uint32]*events.Event) map[uint32]line {
	t.Helper()
	exits := make(map[uint32]line)
	for pid, tr := range truth {
		counts := map[string]int{}
		// pid_for_children changes when the process itself unshares: before
		// that its events carry the old value, which its unshare event names.
		pfc := tr.NS[events.NSPidForChildren]
		for _, l := range lines {
			if l.PID == pid && l.Type == "unshare" {
				if c, ok := l.Changed["pid_for_children"]; ok {
					if c.To != pfc {
						t.Errorf("unshare of %d: pid_for_children to %d, /proc %d", pid, c.To, pfc)
					}
					pfc = c.From
				}
			}
		}
		for _, l := range lines {
			if l.PID != pid {
				continue
			}
			counts[l.Type]++
			switch l.Type {
			case "fork", "exec":
				compareWithProc(t, l, tr, pfc)
			case "unshare":
				pfc = tr.NS[events.NSPidForChildren]
			case "exit":
				compareWithProc(t, l, tr, tr.NS[events.NSPidForChildren])
				exits[pid] = l
			}
		}
		for _, typ := range []string{"fork", "exec", "exit"} {
			if counts[typ] != 1 {
				t.Errorf("process %d (%s): %d %s events, want 1", pid, tr.CommString(), counts[typ], typ)
			}
		}
	}
	return exits
}

// runNested runs `sh -c "sleep 1.5; exit 7"` depth pid namespaces deep
// (unshare --pid --fork, depth times) and returns the chain's first process
// and what /proc said of every process of the chain while all lived.
func runNested(t *testing.T, depth int) (root int, truth map[uint32]*events.Event) {
	t.Helper()
	var argv []string
	for range depth {
		argv = append(argv, "unshare", "--pid", "--fork")
	}
	argv = append(argv, "sh", "-c", "sleep 1.5; exit 7")
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Once the chain is built, every process is alive and settled.
	time.Sleep(800 * time.Millisecond)
	truth = readTruth(t, cmd.Process.Pid)
	err := cmd.Wait()
	if cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("workload: %v", err)
	}
	return cmd.Process.Pid, truth
}

func TestEventsMatchProcAtDepths(t *testing.T) {
	testenv.Require(t)
	for _, depth := range []int{0, 1, 3, 32} {
		t.Run(fmt.Sprintf("depth%d", depth), func(t *testing.T) {
			s := startTrace(t)
			root, truth := runNested(t, depth)
			lines := subtree(s.stop(t, syscall.SIGINT), root)

			if len(truth) != depth+2 {
				t.Fatalf("/proc shows %d processes, want %d unshare + sh + sleep", len(truth), depth)
			}
			exits := checkLifecycle(t, lines, truth)
			unshares := 0
			for pid, tr := range truth {
				want := 7
				if tr.CommString() == "sleep" {
					want = 0
				}
				if e := exits[pid]; e.ExitCode != want || e.Signal != 0 {
					t.Errorf("exit of %d (%s): code %d signal %d, want code %d", pid, tr.CommString(), e.ExitCode, e.Signal, want)
				}
				if tr.CommString() != "unshare" && tr.Levels != depth+1 {
					t.Errorf("%s has %d levels in /proc, want %d", tr.CommString(), tr.Levels, depth+1)
				}
			}
			for _, l := range lines {
				if l.Type == "unshare" {
					unshares++
					if !slices.Equal(l.Flags, []string{"pid"}) || l.Ret != 0 {
						t.Errorf("unshare of %d: flags %v ret %d, want [pid] 0", l.PID, l.Flags, l.Ret)
					}
				}
			}
			if unshares != depth {
				t.Errorf("%d unshare events, want %d", unshares, depth)
			}
		})
	}
}

func TestExitCodesAndSignals(t *testing.T) {
	testenv.Require(t)
	scripts := []string{
		"exit 3",
		"exit 255",
		"kill -KILL $$",
		"kill -TERM $$",
		// A core dump into this test's temporary directory.
		"ulimit -c unlimited; cd " + t.TempDir() + " && kill -QUIT $$",
	}
	s := startTrace(t, "--events", "exit")
	var cmds []*exec.Cmd
	for _, script := range scripts {
		cmd := exec.Command("sh", "-c", script)
		cmd.Run() // non-zero exits are the point
		cmds = append(cmds, cmd)
	}
	lines := s.stop(t, syscall.SIGTERM)
	for i, cmd := range cmds {
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		var got []line
		for _, l := range lines {
			if l.PID == uint32(cmd.Process.Pid) {
				got = append(got, l)
			}
		}
		if len(got) != 1 {
			t.Errorf("%q: %d exit lines, want 1", scripts[i], len(got))
			continue
		}
		wantCode, wantSig := ws.ExitStatus(), 0
		if ws.Signaled() {
			wantCode, wantSig = 0, int(ws.Signal())
		}
		if got[0].ExitCode != wantCode || got[0].Signal != wantSig || got[0].CoreDumped != ws.CoreDump() {
			t.Errorf("%q: exit_code %d signal %d core_dumped %v; wait(2) says %d, %d, %v",
				scripts[i], got[0].ExitCode, got[0].Signal, got[0].CoreDumped, wantCode, wantSig, ws.CoreDump())
		}
	}
}

func TestNsenterYieldsSetns(t *testing.T) {
	testenv.Require(t)
	// A container-like process: its own pid, net, uts and ipc namespaces.
	inner := testenv.NewPidNS(t, "--net", "--uts", "--ipc").Holder
	var want events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, inner, &want); err != nil {
		t.Fatal(err)
	}

	s := startTrace(t)
	enter := exec.Command("nsenter", "-t", fmt.Sprint(inner), "--pid", "--net", "--uts", "--ipc", "sh", "-c", "sleep 0.8")
	if err := enter.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	truth := readTruth(t, enter.Process.Pid)
	if err := enter.Wait(); err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	lines := subtree(s.stop(t, syscall.SIGINT), enter.Process.Pid)

	joined := map[string]uint32{}
	for _, l := range lines {
		if l.Type != "setns" || l.PID != uint32(enter.Process.Pid) {
			continue
		}
		if l.Ret != 0 {
			t.Errorf("setns returned %d", l.Ret)
		}
		for kind, c := range l.Changed {
			joined[kind] = c.To
		}
	}
	wantJoined := map[string]uint32{
		"net":              want.NS[events.NSNet],
		"uts":              want.NS[events.NSUTS],
		"ipc":              want.NS[events.NSIPC],
		"pid_for_children": want.NS[events.NSPid],
	}
	for kind, ino := range wantJoined {
		if joined[kind] != ino {
			t.Errorf("setns changed %s to %d, want the target's %d (all changes: %v)", kind, joined[kind], ino, joined)
		}
	}
	if _, ok := joined["pid"]; ok {
		t.Error("setns reported a change of the caller's own pid namespace; only pid_for_children changes")
	}
	// The child nsenter forks lives in the target's pid namespace.
	for pid, tr := range truth {
		if pid == uint32(enter.Process.Pid) {
			continue
		}
		if tr.PidNS[tr.Levels-1] != want.NS[events.NSPid] {
			t.Errorf("nsenter's child %d is not in the target's pid namespace", pid)
		}
		for _, l := range lines {
			if l.PID == pid && (l.Type == "fork" || l.Type == "exec") {
				compareWithProc(t, l, tr, tr.NS[events.NSPidForChildren])
			}
		}
	}
}

func TestUnshareForkYieldsDeeperChild(t *testing.T) {
	testenv.Require(t)
	s := startTrace(t, "--events", "fork,unshare")
	cmd := exec.Command("unshare", "--pid", "--fork", "true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	lines := subtree(s.stop(t, syscall.SIGINT), cmd.Process.Pid)
	var un, child *line
	for i, l := range lines {
		switch {
		case l.Type == "unshare" && l.PID == uint32(cmd.Process.Pid):
			un = &lines[i]
		case l.Type == "fork" && l.PPID == uint32(cmd.Process.Pid):
			child = &lines[i]
		}
	}
	if un == nil || child == nil {
		t.Fatalf("want an unshare line and a child fork line, got %+v", lines)
	}
	if !slices.Contains(un.Flags, "pid") || un.Ret != 0 {
		t.Errorf("unshare: flags %v ret %d", un.Flags, un.Ret)
	}
	newNS := un.Changed["pid_for_children"].To
	if newNS == 0 || newNS == un.NS["pid"] {
		t.Errorf("unshare did not report a new pid_for_children: %+v", un.Changed)
	}
	if len(child.NSPid) != len(un.NSPid)+1 || child.PidNS[len(child.PidNS)-1] != newNS || child.NSPid[len(child.NSPid)-1] != 1 {
		t.Errorf("child: nspid %v pidns %v, want one level deeper than %v, as PID 1 of %d", child.NSPid, child.PidNS, un.NSPid, newNS)
	}
}

func TestThreadsOnlyWithFlag(t *testing.T) {
	testenv.Require(t)
	for _, withThreads := range []bool{false, true} {
		t.Run(fmt.Sprintf("threads=%v", withThreads), func(t *testing.T) {
			var args []string
			if withThreads {
				args = append(args, "--threads")
			}
			s := startTrace(t, args...)
			helper := exec.Command(os.Args[0])
			helper.Env = append(os.Environ(), "NSPIDTRACE_TEST_HELPER=threads")
			if err := helper.Run(); err != nil {
				t.Fatal(err)
			}
			pid := uint32(helper.Process.Pid)
			var forks, threadForks, exits, threadExits int
			for _, l := range s.stop(t, syscall.SIGINT) {
				if l.PID != pid {
					continue
				}
				switch {
				case l.Type == "fork" && l.Thread:
					threadForks++
					if l.TID == l.PID {
						t.Errorf("thread fork with tid == pid %d", l.PID)
					}
				case l.Type == "fork":
					forks++
				case l.Type == "exit" && l.Thread:
					threadExits++
				case l.Type == "exit":
					exits++
				}
			}
			if forks != 1 || exits != 1 {
				t.Errorf("process: %d fork and %d exit lines, want 1 and 1", forks, exits)
			}
			if withThreads && (threadForks < 4 || threadExits < 4) {
				t.Errorf("--threads: %d thread forks and %d thread exits, want at least 4 each", threadForks, threadExits)
			}
			if !withThreads && threadForks+threadExits > 0 {
				t.Errorf("without --threads: %d thread forks and %d thread exits, want none", threadForks, threadExits)
			}
		})
	}
}

func TestPidSubtreeFollowsNewChildren(t *testing.T) {
	testenv.Require(t)
	// A parent that is alive before the trace starts and forks after.
	parent := exec.Command("sh", "-c", "read x; sh -c 'exit 4'; exit 0")
	stdin, err := parent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	s := startTrace(t, "--pid", fmt.Sprint(parent.Process.Pid))
	exec.Command("sh", "-c", "exit 5").Run() // not in the subtree
	io.WriteString(stdin, "go\n")
	stdin.Close()
	parent.Wait()
	lines := s.stop(t, syscall.SIGINT)
	var codes []int
	for _, l := range lines {
		if l.Type == "exit" {
			codes = append(codes, l.ExitCode)
		}
		if l.PID != uint32(parent.Process.Pid) && l.PPID != uint32(parent.Process.Pid) {
			t.Errorf("line outside the subtree: %+v", l)
		}
	}
	slices.Sort(codes)
	if !slices.Equal(codes, []int{0, 4}) {
		t.Errorf("exit codes %v, want the child's 4 and the parent's 0", codes)
	}
}

func TestPidNSFilter(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	// REF as a PID; the other forms are covered by pidmap's tests.
	s := startTrace(t, "--pidns", fmt.Sprint(ns.Holder))
	exec.Command("sh", "-c", "exit 5").Run() // outside
	// nsenter stays outside; the child it forks is inside.
	exec.Command("nsenter", "--target", fmt.Sprint(ns.Holder), "--pid", "sh", "-c", "exit 6").Run()
	lines := s.stop(t, syscall.SIGINT)
	types := map[string]int{}
	for _, l := range lines {
		if !slices.Contains(l.PidNS, ns.Inode) {
			t.Errorf("line outside pid:[%d]: %+v", ns.Inode, l)
		}
		if l.Comm == "sh" || l.Comm == "nsenter" {
			types[l.Type]++
			if l.Type == "exit" && l.ExitCode != 6 {
				t.Errorf("exit code %d inside, want 6", l.ExitCode)
			}
		}
	}
	// The fork carries nsenter's comm; exec and exit are sh's.
	if types["fork"] != 1 || types["exec"] != 1 || types["exit"] != 1 {
		t.Errorf("inside the namespace: %v, want one fork, exec and exit", types)
	}
}

// TestCallerDeepInNamespaces: run three pid namespaces deep, where the task
// iterator visits that namespace's processes only, `nspidtrace 1` still
// gives its parent's PID at every level the parent is in, as the host's
// /proc says (the parent is outside the caller's namespace).
func TestCallerDeepInNamespaces(t *testing.T) {
	testenv.Require(t)
	out := filepath.Join(t.TempDir(), "out")
	var argv []string
	for range 3 {
		argv = append(argv, "unshare", "--pid", "--fork", "--mount-proc")
	}
	argv = append(argv, "sh", "-c", binPath+" 1 --ancestors >"+out+".text 2>&1; "+binPath+" 1 -o json >"+out+" 2>&1; sleep 3")
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var data []byte
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if data, _ = os.ReadFile(out); bytes.HasSuffix(data, []byte("\n")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nspidtrace 1 inside three namespaces wrote %q", data)
		}
	}
	var l line
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	// The sh is alive (it sleeps): /proc on the host is the truth.
	var truth events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, int(l.PID), &truth); err != nil {
		t.Fatal(err)
	}
	if truth.Levels != 4 || !slices.Equal(l.NSPid, truth.NSPid[:4]) {
		t.Fatalf("nspid %v, /proc NStgid %v", l.NSPid, truth.NSPid[:truth.Levels])
	}
	if !slices.Equal(l.NSPPid, truth.NSPPid[:4]) || l.NSPPid[1] == 0 {
		t.Errorf("nsppid %v, /proc parent's NStgid %v", l.NSPPid, truth.NSPPid[:4])
	}
	// Its ancestors are outside the namespace: say so, not an empty table.
	text, _ := os.ReadFile(out + ".text")
	if want := fmt.Sprintf("none visible from here: the parent, host PID %d,", truth.PPID); !strings.Contains(string(text), want) {
		t.Errorf("--ancestors inside:\n%s\nwant %q", text, want)
	}
}

// TestTraceCommBusyboxApplet: busybox's sh runs an applet by exec'ing
// /proc/self/exe (comm exe, argv[0] sleep), which then renames itself:
// trace --comm sleep has its exec, its rename and its exit.
func TestTraceCommBusyboxApplet(t *testing.T) {
	testenv.Require(t)
	s := startTrace(t, "--comm", "sleep", "--events", "exec,rename,exit")
	if out, err := exec.Command("busybox", "sh", "-c", "sleep 0.2; true").CombinedOutput(); err != nil {
		t.Fatalf("busybox sh: %v %s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	types := map[uint32][]string{}
	for _, l := range s.stop(t, syscall.SIGINT) {
		if l.Type == "exec" && l.Filename == "/proc/self/exe" || types[l.PID] != nil {
			types[l.PID] = append(types[l.PID], l.Type+":"+l.Comm)
		}
	}
	for pid, seen := range types {
		if strings.Join(seen, " ") == "exec:exe rename:sleep exit:sleep" {
			return
		}
		t.Logf("%d: %v", pid, seen)
	}
	t.Errorf("no applet with its exec, rename and exit: %v", types)
}
