package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// watchRow is one process row as the terminal shows it.
type watchRow struct {
	mark byte   // '+' new, '✗' exited (as its first byte), ' '
	pids string // host first: "12573/52/1"
	line string
}

// rowPattern is a row: mark, PIDs, user, age, then the command.
var rowPattern = regexp.MustCompile(`^(.) (\(?[0-9][0-9/]*\)?)\s+\S+\s+(?:\d+[smhd]|-) `)

// watchRows are the process rows of a screen (between the header and the
// footer).
func watchRows(screen []string) []watchRow {
	var rows []watchRow
	for _, l := range screen[2 : len(screen)-1] {
		if m := rowPattern.FindStringSubmatch(l); m != nil {
			rows = append(rows, watchRow{mark: m[1][0], pids: m[2], line: l})
		}
	}
	return rows
}

// liveRows are the rows of processes not shown as exited.
func liveRows(screen []string) []string {
	var pids []string
	for _, r := range watchRows(screen) {
		if r.mark != "✗"[0] {
			pids = append(pids, r.pids)
		}
	}
	return pids
}

// treeRows are the processes `tree -o json` prints, in its order, as
// watch's PID column shows them.
func treeRows(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command(binPath, append([]string{"tree", "-o", "json"}, args...)...).Output()
	if err != nil {
		t.Fatalf("tree %v: %v", args, err)
	}
	var pids []string
	for l := range bytes.Lines(out) {
		var p struct{ NSPid []uint32 }
		if err := json.Unmarshal(l, &p); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, joinPIDs(p.NSPid))
	}
	return pids
}

func joinPIDs(pids []uint32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.FormatUint(uint64(p), 10)
	}
	return strings.Join(s, "/")
}

// namedCopy copies a program under name, so that its processes have that
// comm.
func namedCopy(t *testing.T, program, name string) string {
	t.Helper()
	src, err := exec.LookPath(program)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// findComm waits for a process with comm, and returns its host PID.
func findComm(t *testing.T, comm string, timeout time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.TrimSpace(string(c)) == comm {
				return pid
			}
		}
	}
	t.Fatalf("no process %s appeared", comm)
	return 0
}

// TestWatchLive drives `watch` in a real terminal: the filter narrows the
// tree; a process started two pid namespaces deep appears within a second
// with its PIDs at every level, as /proc's NStgid has them; its exit shows
// its code; q ends it with exit 0.
func TestWatchLive(t *testing.T) {
	testenv.Require(t)
	status := filepath.Join(t.TempDir(), "status")
	tm := testenv.StartTmux(t, 200, 50, fmt.Sprintf("%s watch 2>%s.err; echo $? > %s; sleep 60", binPath, status, status))
	tm.WaitFor("the live tree", 10*time.Second, func(s []string) bool {
		return strings.HasPrefix(s[0], "nspidtrace watch │ ") && strings.HasSuffix(s[0], "│ all processes") && len(watchRows(s)) > 3
	})
	// The tmux server runs watch: it was there before watch, so the
	// snapshot has its row. (Found with a filter: unfiltered, the row can
	// sit below the screen, after this test's exited capture-pane clients.)
	tm.Keys("/")
	tm.Type("tmux: server")
	tm.Keys("Enter")
	tm.WaitFor("tmux's own row", 2*time.Second, func(s []string) bool {
		return slices.ContainsFunc(watchRows(s), func(r watchRow) bool { return strings.Contains(r.line, "tmux: server") })
	})

	const comm = "nswatch-live"
	shell := namedCopy(t, "dash", comm)
	tm.Keys("/")
	for range len("tmux: server") {
		tm.Keys("BSpace")
	}
	tm.Type(comm)
	tm.Keys("Enter")
	tm.WaitFor("the filter, and nothing matching it", 2*time.Second, func(s []string) bool {
		return testenv.Contains(s, "no process matches the filter") && testenv.Contains(s, "[filter: "+comm+"]")
	})

	cmd := exec.Command("unshare", "--pid", "--fork", "unshare", "--pid", "--fork", shell, "-c", "sleep 1.5; exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := findComm(t, comm, 5*time.Second)
	seen := time.Now()
	var truth events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, pid, &truth); err != nil {
		t.Fatal(err)
	}
	want := joinPIDs(truth.NSPid[:truth.Levels])
	if truth.Levels != 3 {
		t.Fatalf("/proc/%d NStgid %s: want 3 levels", pid, want)
	}
	screen := tm.WaitFor("the new process at every level", time.Second, func(s []string) bool {
		return slices.ContainsFunc(watchRows(s), func(r watchRow) bool {
			return r.pids == want && r.mark == '+' && strings.Contains(r.line, comm)
		})
	})
	t.Logf("%s (%s) on screen %v after it appeared in /proc", comm, want, time.Since(seen).Round(time.Millisecond))
	// Narrowed: the match and its ancestors (the two unshares, this test's
	// own chain), not tmux's.
	if testenv.Contains(screen, "tmux: server") {
		t.Errorf("the filter %q still shows tmux's row:\n%s", comm, strings.Join(screen, "\n"))
	}
	for _, r := range watchRows(screen) {
		if !strings.Contains(r.line, comm) && !strings.Contains(r.line, "unshare") && !isAncestorRow(r.pids) {
			t.Errorf("row %q neither matches the filter nor is an ancestor of a match", r.line)
		}
	}

	exitRow := regexp.MustCompile(`^✗ ` + regexp.QuoteMeta(want) + ` .*` + comm + ` \[exit 7\]`)
	tm.WaitFor("its exit with code 7", 4*time.Second, func(s []string) bool {
		return slices.ContainsFunc(s, exitRow.MatchString)
	})

	tm.Keys("q")
	if got := strings.TrimSpace(testenv.WaitFile(t, status, 5*time.Second)); got != "0" {
		errs, _ := os.ReadFile(status + ".err")
		t.Fatalf("watch ended with %s: %s", got, errs)
	}
}

// isAncestorRow reports whether the row's host PID is this test process or
// one of its ancestors.
func isAncestorRow(pids string) bool {
	host, _, _ := strings.Cut(pids, "/")
	for pid := os.Getpid(); pid > 1; {
		if strconv.Itoa(pid) == host {
			return true
		}
		var ev events.Event
		if procfs.ReadProc(procfs.ProcRoot, pid, &ev) != nil {
			return false
		}
		pid = int(ev.PPID)
	}
	return false
}

// recordWorkload records a pid namespace in which nswa lives from 0 to 2 s
// and nswb from 1 to 3 s; it returns the recording, the namespace and two
// instants: nswa alive (and the init's sleep 1), then only nswb.
func recordWorkload(t *testing.T) (path, pidns string, t1, t2 time.Time) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "workload.ndjson")
	rec := startRecord(t, path)
	a, b := namedCopy(t, "sleep", "nswa"), namedCopy(t, "sleep", "nswb")
	start := time.Now()
	cmd := exec.Command("unshare", "--pid", "--fork", "sh", "-c", fmt.Sprintf("%s 2 & sleep 1; %s 2 & wait", a, b))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	inode, err := procfs.ResolvePidNS(procfs.ProcRoot, strconv.Itoa(findComm(t, "nswa", 5*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatal(err)
	}
	return path, fmt.Sprintf("pid:[%d]", inode), start.Add(500 * time.Millisecond), start.Add(2500 * time.Millisecond)
}

// TestWatchRecording moves watch's time cursor over a recording: at each
// instant it shows the processes `tree --from --at` prints, in its order.
// It also steps back an event, and survives resizing.
func TestWatchRecording(t *testing.T) {
	testenv.Require(t)
	path, pidns, t1, t2 := recordWorkload(t)
	at1, at2 := rfc3339(t1), rfc3339(t2)

	status := filepath.Join(t.TempDir(), "status")
	tm := testenv.StartTmux(t, 160, 40, fmt.Sprintf("%s watch --from %s --at %s --pidns %s 2>%s.err; echo $? > %s; sleep 60",
		binPath, path, at1, pidns, status, status))
	want := treeRows(t, "--from", path, "--at", at1, "--pidns", pidns)
	if len(want) != 3 {
		t.Fatalf("tree at %s: %v, want sh, nswa and sleep", at1, want)
	}
	tm.WaitFor("the tree at "+at1, 5*time.Second, func(s []string) bool {
		return slices.Equal(liveRows(s), want) && testenv.Contains(s, "nswa")
	})

	tm.Keys("g")
	tm.Type(at2)
	tm.Keys("Enter")
	want = treeRows(t, "--from", path, "--at", at2, "--pidns", pidns)
	if len(want) != 2 {
		t.Fatalf("tree at %s: %v, want sh and nswb", at2, want)
	}
	screen := tm.WaitFor("the tree at "+at2, 5*time.Second, func(s []string) bool {
		return slices.Equal(liveRows(s), want) && testenv.Contains(s, "nswb")
	})
	// nswa exited 0.5 s before: shown as such.
	if !testenv.Contains(screen, "nswa [exit 0]") {
		t.Errorf("nswa's exit is not shown:\n%s", strings.Join(screen, "\n"))
	}

	position := regexp.MustCompile(`event (\d+)/(\d+)`)
	pos := func(s []string) int {
		m := position.FindStringSubmatch(s[0])
		if m == nil {
			t.Fatalf("no cursor position in the header %q", s[0])
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	before := pos(screen)
	// ← steps to the namespace's previous event, past the host's others.
	tm.Keys("Left")
	tm.WaitFor("an earlier event", 2*time.Second, func(s []string) bool { return pos(s) < before })

	checkResized := func(width, height int) {
		t.Helper()
		tm.Resize(width, height)
		tm.WaitFor(fmt.Sprintf("an ungarbled %dx%d screen", width, height), 3*time.Second, func(s []string) bool {
			if len(s) != height || !strings.HasPrefix(s[0], "nspidtrace watch") || !strings.HasPrefix(s[1], "  PID") {
				return false
			}
			if !strings.HasPrefix(s[height-1], "q quit") {
				return false
			}
			for _, l := range s[2 : height-1] {
				if len([]rune(l)) > width || l != "" && rowPattern.FindString(l) == "" {
					return false
				}
			}
			return len(watchRows(s)) >= 2
		})
	}
	checkResized(60, 12)
	checkResized(150, 30)

	tm.Keys("q")
	if got := strings.TrimSpace(testenv.WaitFile(t, status, 5*time.Second)); got != "0" {
		errs, _ := os.ReadFile(status + ".err")
		t.Fatalf("watch ended with %s: %s", got, errs)
	}
}

// TestWatchRestoresTerminal ends watch with SIGTERM and checks the
// terminal is back as it was: canonical mode and echo on.
func TestWatchRestoresTerminal(t *testing.T) {
	testenv.Require(t)
	path, _, _, _ := recordWorkload(t)
	dir := t.TempDir()
	tm := testenv.StartTmux(t, 120, 30, fmt.Sprintf("stty -a > %s/before; %s watch --from %s; echo $? > %s/status; stty -a > %s/after; sleep 60",
		dir, binPath, path, dir, dir))
	tm.WaitFor("the screen", 5*time.Second, func(s []string) bool { return strings.HasPrefix(s[0], "nspidtrace watch") })
	children, err := procfs.Descendants(procfs.ProcRoot, tm.PanePID())
	if err != nil {
		t.Fatal(err)
	}
	killed := false
	for _, pid := range children {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == binPath {
			syscall.Kill(int(pid), syscall.SIGTERM)
			killed = true
		}
	}
	if !killed {
		t.Fatal("watch's process not found")
	}
	if got := strings.TrimSpace(testenv.WaitFile(t, dir+"/status", 5*time.Second)); got != "0" {
		t.Errorf("watch ended by SIGTERM with %s, want 0", got)
	}
	after := testenv.WaitFile(t, dir+"/after", 5*time.Second)
	before, _ := os.ReadFile(dir + "/before")
	// The first line holds the size, which is the same; the modes must be.
	if after != string(before) {
		t.Errorf("the terminal's modes changed:\nbefore: %s\nafter: %s", before, after)
	}
	for _, mode := range []string{" icanon", " echo "} {
		if !strings.Contains(after, mode) {
			t.Errorf("after watch the terminal lacks%s: %s", mode, after)
		}
	}
}

// TestWatchNeedsTerminal: into a pipe or file, watch refuses with exit 2.
func TestWatchNeedsTerminal(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"watch"}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "stdout is not one") || stdout.Len() != 0 {
		t.Errorf("watch into a buffer: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestWatchContainerRestart: watch --container follows the container by
// name across docker restart: the old init is shown killed, the new one
// appears as PID 1 of the container, with the host PID docker reports, and
// a docker exec'd shell's exit code shows.
func TestWatchContainerRestart(t *testing.T) {
	testenv.Docker(t)
	name := uniqueName("wr")
	testenv.DockerRun(t, []string{"--name", name}, "sleep", "600")
	before := testenv.DockerPID(t, name)
	tm := testenv.StartTmux(t, 200, 30, fmt.Sprintf("%s watch --container %s; sleep 60", binPath, name))
	shows := func(pids string, what string) func([]string) bool {
		return func(s []string) bool {
			return slices.ContainsFunc(watchRows(s), func(r watchRow) bool {
				return strings.HasPrefix(r.pids, pids) && strings.Contains(r.line, what)
			})
		}
	}
	tm.WaitFor("the container's init", 10*time.Second, shows(fmt.Sprintf("%d/1", before), "sleep 600"))

	testenv.DockerCmd(t, "restart", "-t", "1", name)
	after := testenv.DockerPID(t, name)
	tm.WaitFor("the new init, and the old one killed", 5*time.Second, func(s []string) bool {
		return shows(fmt.Sprintf("%d/1", after), "sleep 600")(s) && shows(fmt.Sprintf("%d/1", before), "sleep [signal 9]")(s)
	})
	exec.Command("docker", "exec", name, "sh", "-c", "sleep 0.5; exit 7").Run()
	tm.WaitFor("the exec'd shell's exit", 5*time.Second, func(s []string) bool {
		return testenv.Contains(s, "sh [exit 7]") && testenv.Contains(s, "container "+name)
	})
}
