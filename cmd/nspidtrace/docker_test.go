package main

// End-to-end tests against a real Docker engine: every answer is compared
// with /proc and with what docker inspect and docker top say.

import (
	"bytes"
	"encoding/json"
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

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// uniqueName is a container name no other test run uses.
func uniqueName(base string) string {
	return fmt.Sprintf("%s-%d-%d", base, os.Getpid(), time.Now().UnixNano()%1e6)
}

// jsonLines decodes one proc object per line.
func jsonLines(t *testing.T, out string) []line {
	t.Helper()
	var ls []line
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		if s == "" {
			continue
		}
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		ls = append(ls, l)
	}
	return ls
}

// dockerTop returns the host PIDs docker top lists for a container.
func dockerTop(t *testing.T, name string) []uint32 {
	t.Helper()
	var pids []uint32
	for _, row := range strings.Split(testenv.DockerCmd(t, "top", name, "-o", "pid"), "\n")[1:] {
		n, err := strconv.ParseUint(strings.TrimSpace(row), 10, 32)
		if err != nil {
			t.Fatalf("docker top: %q", row)
		}
		pids = append(pids, uint32(n))
	}
	slices.Sort(pids)
	return pids
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Names, ID prefixes, the host PID beside the container's, a docker exec'd
// process marked as entered, and tree --container equal to docker top.
func TestDockerContainerByName(t *testing.T) {
	testenv.Docker(t)
	name := uniqueName("web")
	id := testenv.DockerRun(t, []string{"--name", name}, "sleep", "600")
	init := testenv.DockerPID(t, name)

	for _, arg := range []string{name, id, id[:12], strings.ToUpper(id[:8])} {
		l := procJSON(t, "--container", arg, "1")
		wantProc(t, l, init)
		if l.Container == nil || l.Container.ID != id || l.Container.Name != name || l.Container.Runtime != "docker" {
			t.Errorf("--container %s 1: container %+v, want %s named %s", arg, l.Container, id[:12], name)
		}
		if !strings.HasSuffix(l.Cgroup, id) && !strings.Contains(l.Cgroup, "docker-"+id) {
			t.Errorf("--container %s 1: cgroup %q does not name the container", arg, l.Cgroup)
		}
	}
	// Text: the host PID first, the container's next, and the container named.
	stdout, stderr, code := runBinary(t, "--container", name, "1")
	rows := strings.Split(stdout, "\n")
	if code != exitOK || len(rows) < 6 || rows[1] != "user   uid 0 (root)" || strings.Fields(rows[3])[1] != strconv.Itoa(init) ||
		strings.Fields(rows[4])[1] != "1" || !strings.HasPrefix(rows[5], "container "+name+" ("+id[:12]+", docker)") {
		t.Errorf("--container %s 1: exit %d %s\n%s", name, code, stderr, stdout)
	}

	// A process docker exec started: entered, in the container's cgroup.
	testenv.DockerCmd(t, "exec", "-d", name, "sleep", "500")
	var execd line
	waitFor(t, "the exec'd sleep", func() bool {
		out, _, _ := runBinary(t, "tree", "--container", name, "-o", "json")
		for _, l := range jsonLines(t, out) {
			if l.Comm == "sleep" && len(l.NSPid) == 2 && l.NSPid[1] != 1 {
				execd = l
				return true
			}
		}
		return false
	})
	if execd.EnteredBy == "" || execd.Outside || execd.Container == nil || execd.Container.ID != id {
		t.Errorf("docker exec'd process: entered_by %q, outside_init_cgroup %v, container %+v", execd.EnteredBy, execd.Outside, execd.Container)
	}
	compareWithStatus(t, execd)
	// From the host, /proc answers for both as the task iterator does.
	sameFromProcAndKernel(t, init)
	sameFromProcAndKernel(t, int(execd.PID))
	stdout, _, _ = runBinary(t, "tree", "--container", name)
	wantRow := fmt.Sprintf("sleep(%d, host %d) [pid:[%d]] [entered from containerd-shim(", execd.NSPid[1], execd.PID, execd.PidNS[1])
	if !strings.Contains(stdout, wantRow) {
		t.Errorf("tree --container: no row %q in\n%s", wantRow, stdout)
	}

	// tree --container holds what docker top lists, no more.
	out, _, _ := runBinary(t, "tree", "--container", name, "-o", "json")
	var pids []uint32
	for _, l := range jsonLines(t, out) {
		pids = append(pids, l.PID)
	}
	slices.Sort(pids)
	if top := dockerTop(t, name); !slices.Equal(pids, top) {
		t.Errorf("tree --container %s: host PIDs %v, docker top: %v", name, pids, top)
	}

	// A name nothing has: exit 3, saying what was searched.
	_, stderr, code = runBinary(t, "tree", "--container", name+"-nope")
	if code != exitNotFound || !strings.Contains(stderr, "no running container matches") || !strings.Contains(stderr, "Docker, containerd, CRI-O and Podman") {
		t.Errorf("an unknown name: exit %d: %s", code, stderr)
	}
}

// compareWithStatus checks a proc line against the host's /proc.
func compareWithStatus(t *testing.T, l line) {
	t.Helper()
	var ev events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, int(l.PID), &ev); err != nil {
		t.Fatal(err)
	}
	if nstgid := ev.NSPid[:ev.Levels]; !slices.Equal(nstgid, l.NSPid) {
		t.Errorf("PID %d: nspid %v, /proc says NStgid %v", l.PID, l.NSPid, nstgid)
	}
}

// One membership rule: a --pid=host container is its own processes, not the
// host's; a --pid=container: sidecar is its own, not its neighbour's, and its
// processes show in the neighbour's pid namespace marked as outside.
func TestDockerMembershipRule(t *testing.T) {
	testenv.Docker(t)
	web := uniqueName("web")
	testenv.DockerRun(t, []string{"--name", web}, "sleep", "600")
	side := uniqueName("side")
	testenv.DockerRun(t, []string{"--name", side, "--pid", "container:" + web}, "sleep", "601")
	hostc := uniqueName("hostpid")
	testenv.DockerRun(t, []string{"--name", hostc, "--pid", "host"}, "sleep", "602")

	for _, name := range []string{web, side, hostc} {
		out, stderr, code := runBinary(t, "tree", "--container", name, "-o", "json")
		if code != exitOK {
			t.Fatalf("tree --container %s: exit %d %s", name, code, stderr)
		}
		var members []uint32
		for _, l := range jsonLines(t, out) {
			if l.Container != nil && l.Container.Name == name {
				members = append(members, l.PID)
			} else if !l.Outside {
				t.Errorf("tree --container %s: %s(%d) is in %+v, not marked outside", name, l.Comm, l.PID, l.Container)
			}
		}
		slices.Sort(members)
		if top := dockerTop(t, name); !slices.Equal(members, top) {
			t.Errorf("tree --container %s: members %v, docker top %v", name, members, top)
		}
	}
	// web's pid namespace also holds the sidecar's sleep, marked.
	stdout, _, _ := runBinary(t, "tree", "--container", web)
	if !strings.Contains(stdout, "[in "+web+"'s pid namespace, container "+side+"]") {
		t.Errorf("tree --container %s does not mark the sidecar's process:\n%s", web, stdout)
	}
	// The --pid=host container seen from the host: its own sleep only.
	stdout, _, _ = runBinary(t, "tree", "--container", hostc)
	if rows := strings.Split(strings.TrimSpace(stdout), "\n"); len(rows) != 1 || !strings.HasPrefix(rows[0], "sleep(") {
		t.Errorf("tree --container %s (--pid=host): want its one sleep:\n%s", hostc, stdout)
	}

	// trace: each container's exits, nothing of the host's or the neighbour's.
	traces := map[string]*session{}
	for _, name := range []string{web, side, hostc} {
		traces[name] = startTrace(t, "--container", name, "--events", "exit")
	}
	exec.Command("sh", "-c", "exit 40").Run()
	for i, name := range []string{web, side, hostc} {
		exec.Command("docker", "exec", name, "sh", "-c", fmt.Sprintf("exit 4%d", i+1)).Run() // fails: the code is what is looked for
	}
	time.Sleep(200 * time.Millisecond)
	for i, name := range []string{web, side, hostc} {
		var codes, outside []int
		for _, l := range traces[name].stop(t, syscall.SIGINT) {
			switch {
			case l.Container != nil && l.Container.Name == name:
				codes = append(codes, l.ExitCode)
			case l.Outside:
				outside = append(outside, l.ExitCode)
			default:
				t.Errorf("trace --container %s: a line of %+v, not marked outside_init_cgroup", name, l.Container)
			}
		}
		if want := 41 + i; !slices.Contains(codes, want) || slices.ContainsFunc(codes, func(c int) bool { return c >= 40 && c <= 43 && c != want }) {
			t.Errorf("trace --container %s: exit codes %v, want %d and none of the others' (40-43)", name, codes, want)
		}
		// The sidecar's shell ran in web's pid namespace: web's trace
		// shows it, marked; no other trace does.
		if wantOutside := name == web; slices.Contains(outside, 42) != wantOutside {
			t.Errorf("trace --container %s: exit codes marked outside_init_cgroup %v", name, outside)
		}
	}
}

// A pid namespace nested inside a container: three levels, equal to /proc.
func TestDockerNestedNamespace(t *testing.T) {
	testenv.Docker(t)
	name := uniqueName("nest")
	testenv.DockerRun(t, []string{"--name", name, "--cap-add", "SYS_ADMIN"}, "sleep", "600")
	testenv.DockerCmd(t, "exec", "-d", name, "unshare", "-f", "-p", "sleep", "599")
	var inner line
	waitFor(t, "the nested sleep", func() bool {
		out, _, _ := runBinary(t, "tree", "--container", name, "-o", "json")
		for _, l := range jsonLines(t, out) {
			if len(l.NSPid) == 3 && l.Comm == "sleep" {
				inner = l
				return true
			}
		}
		return false
	})
	compareWithStatus(t, inner)
	if inner.NSPid[2] != 1 || !inner.NSInit {
		t.Errorf("nested: %v, want PID 1 of its own namespace", inner.NSPid)
	}
	// Looked up by its PID in the container: all three levels, host first.
	l := procJSON(t, "--container", name, strconv.Itoa(int(inner.NSPid[1])))
	if !slices.Equal(l.NSPid, inner.NSPid) {
		t.Errorf("--container %s %d: %v, want %v", name, inner.NSPid[1], l.NSPid, inner.NSPid)
	}
}

// docker restart gives the container a new init, often in a pid namespace
// with the dead one's inode: a live trace follows it and says so; a
// recording answers with the generation alive at --at.
func TestDockerRestart(t *testing.T) {
	testenv.Docker(t)
	name := uniqueName("rs")
	testenv.DockerRun(t, []string{"--name", name}, "sleep", "600")
	path := filepath.Join(t.TempDir(), "restart.ndjson")
	rec := startRecord(t, path)
	tr := startTrace(t, "--container", name, "--events", "exec,exit")

	before := testenv.DockerPID(t, name)
	t1 := time.Now()
	time.Sleep(200 * time.Millisecond)
	testenv.DockerCmd(t, "restart", "-t", "1", name)
	after := testenv.DockerPID(t, name)
	time.Sleep(300 * time.Millisecond)
	t2 := time.Now()
	exec.Command("docker", "exec", name, "sh", "-c", "exit 7").Run()
	time.Sleep(300 * time.Millisecond)
	rec.Process.Signal(syscall.SIGINT)
	rec.Wait()

	lines := tr.stop(t, syscall.SIGINT)
	stderr := tr.stderr.String()
	if !strings.Contains(stderr, "the container stopped") || !strings.Contains(stderr, "the container started again") {
		t.Errorf("trace --container across a restart: stderr does not say so:\n%s", stderr)
	}
	var sawOldExit, sawNewExec, sawExit7 bool
	for _, l := range lines {
		sawOldExit = sawOldExit || l.Type == "exit" && int(l.PID) == before
		sawNewExec = sawNewExec || l.Type == "exec" && int(l.PID) == after
		sawExit7 = sawExit7 || l.Type == "exit" && l.ExitCode == 7
		if l.Container == nil || l.Container.Name != name {
			if !l.Outside {
				t.Errorf("trace --container %s: a line of %+v", name, l.Container)
			}
		}
	}
	if !sawOldExit || !sawNewExec || !sawExit7 {
		t.Errorf("trace --container across a restart: old init's exit %v, new init's exec %v, exec'd exit 7 %v", sawOldExit, sawNewExec, sawExit7)
	}

	// Look-back: each instant has its own init.
	for _, c := range []struct {
		at   time.Time
		want int
	}{{t1, before}, {t2, after}} {
		l := procJSON(t, "--from", path, "--at", rfc3339(c.at), "--container", name, "1")
		if int(l.PID) != c.want {
			t.Errorf("--from --at %s --container %s 1: host PID %d, want %d", rfc3339(c.at), name, l.PID, c.want)
		}
	}
	stdout, _, code := runBinary(t, "--from", path, "--at", rfc3339(t1), "tree", "--container", name)
	if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("sleep(1, host %d)", before)) {
		t.Errorf("tree --from --container: exit %d\n%s", code, stdout)
	}
	// trace --from --container: the recorded exit of the exec'd shell.
	stdout, _, code = runBinary(t, "--from", path, "trace", "--container", name, "--events", "exit")
	if code != exitOK || !strings.Contains(stdout, `"exit_code":7`) {
		t.Errorf("trace --from --container: exit %d\n%s", code, stdout)
	}
	_, stderr, code = runBinary(t, "--from", path, "trace", "--container", "no-such-name")
	if code != exitNotFound {
		t.Errorf("trace --from --container of an unknown name: exit %d %s", code, stderr)
	}
}

// The README's container examples, run as written against a container
// named web.
func TestReadmeContainerExamples(t *testing.T) {
	testenv.Docker(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "<!-- The commands below are run, as written, by TestReadmeContainerExamples. -->\n```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README: the container examples' block is missing")
	}
	var commands []string
	for _, l := range strings.Split(block, "\n") {
		if cmd, _, _ := strings.Cut(l, "#"); strings.HasPrefix(cmd, "nspidtrace ") {
			commands = append(commands, strings.TrimSpace(cmd))
		} else if strings.HasPrefix(cmd, "docker run") && !strings.Contains(cmd, "--name web busybox sleep 3600") {
			t.Fatalf("README: the test makes the container of %q; update it", cmd)
		}
	}
	if len(commands) < 4 {
		t.Fatalf("README: %d nspidtrace commands in the container examples", len(commands))
	}
	// docker run -d --name web busybox sleep 3600, with the test's busybox.
	testenv.RemoveTestContainer(t, "web")
	testenv.DockerRun(t, []string{"--name", "web"}, "sleep", "3600")
	init := testenv.DockerPID(t, "web")

	bin := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(bin, "nspidtrace")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, c := range commands {
		cmd := exec.Command("sh", "-c", c)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		// Whatever shows the container's init shows its host PID too.
		if strings.Contains(c, "tree") || strings.HasSuffix(c, " 1") {
			if !strings.Contains(string(out), strconv.Itoa(init)) {
				t.Errorf("%s: the init's host PID %d is not in\n%s", c, init, out)
			}
		}
	}
}

// Podman: a name from containers/storage, the host PID, a podman exec'd
// process marked as entered, and tree --container equal to podman top.
func TestPodmanContainerByName(t *testing.T) {
	testenv.Podman(t)
	name := uniqueName("pweb")
	id := testenv.PodmanRun(t, name, "sleep", "600")
	l := procJSON(t, "--container", name, "1")
	if l.Container == nil || l.Container.ID != id || l.Container.Name != name || l.Container.Runtime != "podman" {
		t.Errorf("--container %s 1: container %+v, want %.12s named %s of podman", name, l.Container, id, name)
	}
	compareWithStatus(t, l)
	testenv.PodmanCmd(t, "exec", "-d", name, "sleep", "500")
	var execd line
	waitFor(t, "the exec'd sleep", func() bool {
		out, _, _ := runBinary(t, "tree", "--container", id[:12], "-o", "json")
		for _, l := range jsonLines(t, out) {
			if l.Comm == "sleep" && l.NSPid[len(l.NSPid)-1] != 1 {
				execd = l
				return true
			}
		}
		return false
	})
	if execd.EnteredBy == "" || execd.Outside {
		t.Errorf("podman exec'd process: entered_by %q, outside_init_cgroup %v", execd.EnteredBy, execd.Outside)
	}
	out, _, _ := runBinary(t, "tree", "--container", name, "-o", "json")
	var pids []string
	for _, l := range jsonLines(t, out) {
		pids = append(pids, strconv.Itoa(int(l.PID)))
	}
	slices.Sort(pids)
	top := strings.Fields(testenv.PodmanCmd(t, "top", name, "hpid"))[1:]
	slices.Sort(top)
	if !slices.Equal(pids, top) {
		t.Errorf("tree --container %s: host PIDs %v, podman top: %v", name, pids, top)
	}
}

// docker stop: the SIGTERM (ignored by a PID 1 without a handler) and the
// SIGKILL after it, each with its sender, then the init's exit.
func TestDockerStopSignals(t *testing.T) {
	testenv.Docker(t)
	name := uniqueName("stop")
	testenv.DockerRun(t, []string{"--name", name}, "sleep", "600")
	init := testenv.DockerPID(t, name)
	tr := startTrace(t, "--container", name, "--events", "signal,exit")
	testenv.DockerCmd(t, "stop", "-t", "1", name)
	time.Sleep(300 * time.Millisecond)
	var got []string
	for _, l := range tr.stop(t, syscall.SIGINT) {
		if int(l.PID) != init {
			continue
		}
		switch l.Type {
		case "signal":
			if l.Sender.PID == 0 || l.Sender.Comm == "" || l.Sender.Key == "" {
				t.Errorf("%s without its sender: %+v", l.SignalName, l.Sender)
			}
			got = append(got, l.SignalName+" "+l.Result)
		case "exit":
			got = append(got, fmt.Sprintf("exit signal %d", l.Signal))
		}
	}
	if want := []string{"SIGTERM ignored", "SIGKILL delivered", "exit signal 9"}; !slices.Equal(got, want) {
		t.Errorf("docker stop of %s (init %d): %q, want %q", name, init, got, want)
	}
}

// TestInsideContainerNamespaces: nspidtrace run inside a container's pid
// and mount namespaces (nsenter -t INIT -p -m -r, or the binary copied
// into the container) reads the container's view of the cgroup hierarchy.
// Each process is attributed as the host's /proc/PID/cgroup says, or
// marked unknown: a --pid=container: sidecar and a process from the
// host's own cgroup are never taken for the container's.
func TestInsideContainerNamespaces(t *testing.T) {
	testenv.Docker(t)
	web := uniqueName("web")
	id := testenv.DockerRun(t, []string{"--name", web}, "sleep", "600")
	side := uniqueName("side")
	testenv.DockerRun(t, []string{"--name", side, "--pid", "container:" + web}, "sleep", "601")
	testenv.DockerCmd(t, "cp", binPath, web+":/nspidtrace")
	init := testenv.DockerPID(t, web)

	cmd := exec.Command("nsenter", "-t", strconv.Itoa(init), "-p", "-m", "-r", "-w", "/nspidtrace", "tree", "-o", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tree inside %s: %v %s", web, err, stderr.String())
	}
	lines := jsonLines(t, string(out))
	if len(lines) < 3 {
		t.Fatalf("tree inside %s: %d processes, want web's, the sidecar's and its own:\n%s", web, len(lines), out)
	}
	for _, l := range lines {
		procCgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", l.PID))
		if err != nil {
			continue // gone: nspidtrace itself, by now
		}
		inWeb := strings.Contains(string(procCgroup), id)
		switch {
		case l.Container != nil && l.Container.ID != id:
			t.Errorf("%s(%d) attributed to %s", l.Comm, l.PID, l.Container.ID)
		case l.Container != nil && !inWeb:
			t.Errorf("%s(%d) attributed to %s, but /proc says %s", l.Comm, l.PID, web, procCgroup)
		case l.Container == nil && inWeb:
			t.Errorf("%s(%d) is %s's, but not attributed: %+v", l.Comm, l.PID, web, l)
		case l.Container == nil && l.AttrError == "":
			t.Errorf("%s(%d) outside the view, not marked unknown: %+v", l.Comm, l.PID, l)
		}
	}
	if !strings.Contains(stderr.String(), "a container's view") {
		t.Errorf("no warning that the view is a container's: %s", stderr.String())
	}

	// <pid> 1 there is the container's init, at every level /proc has.
	inside := func(args ...string) *exec.Cmd {
		return exec.Command("nsenter", append([]string{"-t", strconv.Itoa(init), "-p", "-m", "-r", "-w", "/nspidtrace"}, args...)...)
	}
	out, err = inside("1", "-o", "json").Output()
	if err != nil {
		t.Fatalf("<pid> 1 inside: %v", err)
	}
	var truth events.Event
	if err := procfs.ReadProc(procfs.ProcRoot, init, &truth); err != nil {
		t.Fatal(err)
	}
	if l := jsonLines(t, string(out)); len(l) != 1 || l[0].PID != uint32(init) || !slices.Equal(l[0].NSPid, truth.NSPid[:truth.Levels]) ||
		l[0].Container == nil || l[0].Container.ID != id {
		t.Errorf("<pid> 1 inside: %s; /proc NStgid %v", out, truth.NSPid[:truth.Levels])
	}

	// docker exec: root in the container, without CAP_BPF: the /proc
	// answer, at the levels the container sees, not a failed load.
	execOut, err := exec.Command("docker", "exec", web, "/nspidtrace", "1").CombinedOutput()
	if err != nil || !strings.Contains(string(execOut), "answering from /proc") || !strings.Contains(string(execOut), "sleep  sleep 600") {
		t.Errorf("docker exec %s nspidtrace 1: %v\n%s", web, err, execOut)
	}

	// trace inside: a docker exec'd shell's exit, attributed to web.
	tr := inside("trace", "--events", "exit", "--duration", "3s")
	var trOut bytes.Buffer
	tr.Stdout = &trOut
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // attached
	exec.Command("docker", "exec", web, "sh", "-c", "exit 43").Run()
	if err := tr.Wait(); err != nil {
		t.Fatalf("trace inside: %v", err)
	}
	found := false
	for _, l := range jsonLines(t, trOut.String()) {
		found = found || l.ExitCode == 43 && l.Container != nil && l.Container.ID == id
	}
	if !found {
		t.Errorf("trace inside has no exit 43 in %s:\n%s", web, trOut.String())
	}
}

// TestTraceWaitsForContainer: a stopped container is "stopped", not "no
// such name"; trace --container started before it waits, and follows it
// from its start.
func TestTraceWaitsForContainer(t *testing.T) {
	testenv.Docker(t)
	web := uniqueName("web")
	testenv.DockerRun(t, []string{"--name", web}, "sleep", "600")
	testenv.DockerCmd(t, "stop", "-t", "1", web)
	if _, stderr, code := runBinary(t, "tree", "--container", web); code != exitNotFound || !strings.Contains(stderr, ") is stopped since ") {
		t.Errorf("tree --container of a stopped container: exit %d %s", code, stderr)
	}
	s := startTrace(t, "--container", web, "--events", "exec")
	if !strings.Contains(s.stderr.String(), "waiting for it to start") {
		t.Errorf("trace --container of a stopped container does not say it waits: %s", s.stderr.String())
	}
	testenv.DockerCmd(t, "start", web)
	init := testenv.DockerPID(t, web)
	time.Sleep(500 * time.Millisecond)
	lines := s.stop(t, syscall.SIGINT)
	found := false
	for _, l := range lines {
		found = found || l.PID == uint32(init) && l.Type == "exec" && l.Container != nil && l.Container.Name == web
	}
	if !found || !strings.Contains(s.stderr.String(), "the container started") {
		t.Errorf("trace did not follow %s (init %d) from its start: %d lines, %s", web, init, len(lines), s.stderr.String())
	}
}

// TestOutsideInitCgroupText: a process in a container's pid namespace but
// not in its init's cgroup, that did not itself enter (the child of a
// sidecar's shell), says so in <pid>'s text as its JSON does.
func TestOutsideInitCgroupText(t *testing.T) {
	testenv.Docker(t)
	web := uniqueName("web")
	testenv.DockerRun(t, []string{"--name", web}, "sleep", "600")
	side := uniqueName("side")
	testenv.DockerRun(t, []string{"--name", side, "--pid", "container:" + web}, "sh", "-c", "sleep 602 & wait")
	time.Sleep(300 * time.Millisecond)
	var child uint32
	out, _, _ := runBinary(t, "tree", "--container", side, "-o", "json")
	for _, l := range jsonLines(t, out) {
		if l.Comm == "sleep" {
			child = l.PID
		}
	}
	if child == 0 {
		t.Fatalf("no sleep in %s:\n%s", side, out)
	}
	pid := strconv.Itoa(int(child))
	if out, _, _ := runBinary(t, pid, "-o", "json"); !strings.Contains(out, `"outside_init_cgroup":true`) {
		t.Fatalf("JSON of the sidecar's child: %s", out)
	}
	if out, stderr, _ := runBinary(t, pid); !strings.Contains(out, "not in its init's cgroup") {
		t.Errorf("text of the sidecar's child lacks the line:\n%s%s", out, stderr)
	}
}
