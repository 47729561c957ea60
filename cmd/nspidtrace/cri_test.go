package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestPodsThroughCRI runs pods as the kubelet does, through containerd's
// CRI and crictl, while record runs: one that shares a pid namespace
// between its sandbox and two containers (shareProcessNamespace), with a
// crictl exec shell in one; one whose container has a pid namespace of its
// own and is restarted as the kubelet restarts it (a new container, the
// next attempt). tree, <pid>, trace and the recording name every process
// as crictl does, with /proc's PIDs; the shared pod's containers are the
// pod's, the exec'd shell entered.
func TestPodsThroughCRI(t *testing.T) {
	testenv.CRI(t)
	recPath := t.TempDir() + "/pods.ndjson"
	rec := startRecord(t, recPath)

	suffix := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	uid := func(n int) string {
		return fmt.Sprintf("0000%04x-%04x-4000-8000-%012x", os.Getpid()&0xffff, n, time.Now().UnixNano()&0xffffffffffff)
	}
	shared := testenv.RunPod(t, testenv.PodSpec{Namespace: "shop", Name: "web-" + suffix, UID: uid(1), SharePID: true,
		Containers: []string{"app", "sidecar"}, Cmd: []string{"sleep", "600"}})
	own := testenv.RunPod(t, testenv.PodSpec{Namespace: "shop", Name: "db-" + suffix, UID: uid(2),
		Containers: []string{"app"}, Cmd: []string{"sleep", "600"}})
	execArg := fmt.Sprint(300000 + time.Now().UnixNano()%100000) // a sleep no one else runs
	shared.Exec(t, "app", "sleep", execArg)
	firstApp := own.Containers["app"]
	own.Restart(t, "app", 1)

	// What crictl says of each container, by ID: its name, its pod's.
	type named struct{ pod, uid, name string }
	crictlNames := map[string]named{}
	for _, p := range []*testenv.Pod{shared, own} {
		for name, id := range p.Containers {
			var info struct {
				Status struct {
					Metadata struct{ Name string } `json:"metadata"`
				} `json:"status"`
			}
			if err := json.Unmarshal([]byte(testenv.Crictl(t, "inspect", id)), &info); err != nil {
				t.Fatal(err)
			}
			if info.Status.Metadata.Name != name {
				t.Fatalf("crictl inspect %s: name %q, want %q", id, info.Status.Metadata.Name, name)
			}
			crictlNames[id] = named{p.Spec.Namespace + "/" + p.Spec.Name, p.Spec.UID, name}
		}
	}
	execPID := waitForExec(t, execArg)

	// tree --pod of the shared pod: its pause, both containers' sleeps and
	// the exec'd one, all in one pid namespace, named as crictl names them.
	sharedRef := "shop/" + shared.Spec.Name
	out, stderr, code := runBinary(t, "tree", "--pod", sharedRef, "-o", "json")
	if code != exitOK {
		t.Fatalf("tree --pod %s: exit %d: %s", sharedRef, code, stderr)
	}
	byPID := map[uint32]line{}
	for _, l := range jsonLines(t, out) {
		byPID[l.PID] = l
		compareWithStatus(t, l)
		if l.Container == nil || l.Container.Pod == nil || l.Container.Pod.Namespace+"/"+l.Container.Pod.Name != sharedRef || l.Container.Pod.UID != shared.Spec.UID {
			t.Errorf("tree --pod %s: a process of another pod: %+v", sharedRef, l)
		}
	}
	members := map[string]int{"app": shared.PID(t, "app"), "sidecar": shared.PID(t, "sidecar")}
	for name, pid := range members {
		l, ok := byPID[uint32(pid)]
		switch {
		case !ok:
			t.Errorf("tree --pod %s: no line for %s's init %d (crictl inspect)", sharedRef, name, pid)
		case l.Container.Name != name || l.Container.ID != shared.Containers[name]:
			t.Errorf("%s's init: container %s (%s), crictl says %s (%s)", name, l.Container.Name, l.Container.ID, name, shared.Containers[name])
		case l.EnteredBy != "" || len(l.Findings) > 0:
			t.Errorf("%s's init, a member of the pod, is marked entered_by %q, findings %+v", name, l.EnteredBy, l.Findings)
		case len(l.NSPid) != 2 || l.NSPid[1] == 1:
			t.Errorf("%s's init: nspid %v, want a PID below the pause's 1 in the pod's namespace", name, l.NSPid)
		}
	}
	if l, ok := byPID[uint32(execPID)]; !ok || l.EnteredBy == "" || l.Container == nil || l.Container.Name != "app" {
		t.Errorf("the crictl exec'd sleep %d: %+v, want it in container app and entered", execPID, l)
	}
	var pause *line
	for _, l := range byPID {
		if l.NSInit {
			pause = &l
		}
	}
	if pause == nil || pause.Container.Name != "POD" || pause.Container.ID != shared.ID {
		t.Errorf("the pod's pid namespace init: %+v, want its sandbox %s named POD", pause, shared.ID)
	}
	// As the DaemonSet runs it (docs/kubernetes.md): the image in a
	// container of its own, with the host's pid and cgroup namespaces and
	// containerd's task directory mounted read-only, says what the host's
	// binary says.
	image := buildImage(t)
	run := append([]string{"run", "--rm"}, imageRunArgs...)
	run = append(run, "-v", containerdTasks+":"+containerdTasks+":ro", image, "tree", "--pod", sharedRef, "-o", "json")
	if got, want := podSummary(t, testenv.DockerCmd(t, run...)), podSummary(t, out); !slices.Equal(got, want) {
		t.Errorf("tree --pod %s from the image:\n%s\nfrom the host:\n%s", sharedRef, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	text, _, _ := runBinary(t, "tree", "--pod", sharedRef)
	for _, row := range strings.Split(strings.TrimSpace(text), "\n") {
		if entered := strings.Contains(row, "entered from"); entered != strings.Contains(row, fmt.Sprintf("host %d)", execPID)) {
			t.Errorf("tree --pod %s: only the exec'd shell is entered:\n%s", sharedRef, text)
		}
	}

	// --container NAMESPACE/POD/NAME: that container's processes alone.
	out, stderr, code = runBinary(t, "tree", "--container", sharedRef+"/app", "-o", "json")
	var pids []int
	for _, l := range jsonLines(t, out) {
		pids = append(pids, int(l.PID))
	}
	slices.Sort(pids)
	want := []int{members["app"], execPID}
	slices.Sort(want) // PIDs wrap: the later process may have the lower one
	if code != exitOK || !slices.Equal(pids, want) {
		t.Errorf("tree --container %s/app: exit %d, PIDs %v, want %v: %s", sharedRef, code, pids, want, stderr)
	}

	// <pid> of the restarted container's init names the new container.
	ownRef := "shop/" + own.Spec.Name
	out, stderr, code = runBinary(t, fmt.Sprint(own.PID(t, "app")), "-o", "json")
	if ls := jsonLines(t, out); code != exitOK || len(ls) != 1 || ls[0].Container == nil || ls[0].Container.ID != own.Containers["app"] ||
		crictlNames[ls[0].Container.ID].name != ls[0].Container.Name || ls[0].Container.Pod == nil || ls[0].Container.Pod.UID != own.Spec.UID {
		t.Errorf("<pid> of %s's app: exit %d: %s %s", ownRef, code, out, stderr)
	}

	// Errors name what was searched.
	_, stderr, code = runBinary(t, "tree", "--pod", "shop/nope-"+suffix)
	if code != exitNotFound || !strings.Contains(stderr, "no running pod matches") || !strings.Contains(stderr, sharedRef) {
		t.Errorf("--pod of no pod: exit %d: %s", code, stderr)
	}
	_, stderr, code = runBinary(t, "tree", "--pod", shared.Spec.Name)
	if code != exitUsage || !strings.Contains(stderr, "NAMESPACE/NAME") {
		t.Errorf("--pod without a namespace: exit %d: %s", code, stderr)
	}

	// trace --pod: a crictl exec into the sidecar is the pod's, and
	// entered; nothing of another pod is written.
	s := startTrace(t, "--pod", sharedRef)
	testenv.Crictl(t, "exec", shared.Containers["sidecar"], "true")
	lines := s.stop(t, syscall.SIGINT)
	sawTrue := false
	for _, l := range lines {
		if l.Container != nil && l.Container.Pod != nil && l.Container.Pod.UID != shared.Spec.UID {
			t.Errorf("trace --pod %s wrote another pod's line: %+v", sharedRef, l)
		}
		if l.Type == "exec" && l.Comm == "true" {
			sawTrue = true
			if l.EnteredBy == "" || l.Container == nil || l.Container.Name != "sidecar" {
				t.Errorf("trace --pod: the exec'd true: %+v, want it entered, in sidecar", l)
			}
		}
	}
	if !sawTrue {
		t.Errorf("trace --pod %s: no exec of true in %d lines", sharedRef, len(lines))
	}

	// The recording says the same, and keeps both generations of the
	// restarted container, under one name.
	rec.Process.Signal(syscall.SIGINT)
	if err := rec.Wait(); err != nil {
		t.Fatalf("record: %v", err)
	}
	out, stderr, code = runBinary(t, "tree", "--from", recPath, "--pod", sharedRef, "-o", "json")
	var recorded []uint32
	for _, l := range jsonLines(t, out) {
		recorded = append(recorded, l.PID)
	}
	for name, pid := range members {
		if !slices.Contains(recorded, uint32(pid)) {
			t.Errorf("tree --from --pod %s: no %s init %d in %v (exit %d: %s)", sharedRef, name, pid, recorded, code, stderr)
		}
	}
	// story tells the shared pod's app as one run: its init the process
	// that runs its command (host PIDs, then the pod's), not the runtime's
	// first in its cgroup, which exits once that runs.
	gens, stderr, code := storyGenerations(t, recPath, "--container", sharedRef+"/app")
	if wantInit := fmt.Sprintf("%d/", members["app"]); code != exitOK || len(gens) != 1 || gens[0].ID != shared.Containers["app"] ||
		!strings.HasPrefix(gens[0].InitPIDs, wantInit) || gens[0].Ended != "" {
		t.Errorf("story --container %s/app: exit %d, generations %+v, want one, its init %s…, running: %s", sharedRef, code, gens, wantInit, stderr)
	}
	// story --pod of the restarted pod: its sandbox, and its app twice,
	// the first run ended.
	gens, stderr, code = storyGenerations(t, recPath, "--pod", ownRef)
	var told []string
	for _, g := range gens {
		told = append(told, fmt.Sprintf("%s %s ended=%t", g.Name, g.ID, g.Ended != ""))
	}
	slices.Sort(told)
	wantTold := []string{"POD " + own.ID + " ended=false", "app " + firstApp + " ended=true", "app " + own.Containers["app"] + " ended=false"}
	slices.Sort(wantTold)
	if code != exitOK || !slices.Equal(told, wantTold) {
		t.Errorf("story --pod %s: exit %d, generations %v, want %v: %s", ownRef, code, told, wantTold, stderr)
	}
	// The report of that pod holds the same generations, and nothing of
	// the other pod's.
	page := t.TempDir() + "/pod.html"
	if _, stderr, code := runBinary(t, "report", "--from", recPath, "--pod", ownRef, "-o", page); code != exitOK {
		t.Fatalf("report --pod %s: exit %d: %s", ownRef, code, stderr)
	}
	html, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{own.ID, firstApp, own.Containers["app"]} {
		if !strings.Contains(string(html), `"id":"`+id[:12]+`"`) {
			t.Errorf("report --pod %s: no generation of %s", ownRef, id[:12])
		}
	}
	if strings.Contains(string(html), shared.ID[:12]) || strings.Contains(string(html), shared.Spec.Name) {
		t.Errorf("report --pod %s shows the other pod, %s", ownRef, sharedRef)
	}

	// Another machine reads the recording alone: the image, without
	// capabilities, network or any runtime's files, names the pod's
	// processes as this host does.
	run = []string{"run", "--rm", "--network", "none", "--cap-drop", "ALL", "-v", filepath.Dir(recPath) + ":/rec:ro",
		image, "tree", "--from", "/rec/" + filepath.Base(recPath), "--pod", sharedRef, "-o", "json"}
	if got, want := podSummary(t, testenv.DockerCmd(t, run...)), podSummary(t, out); !slices.Equal(got, want) {
		t.Errorf("tree --from --pod %s on a machine without the runtime's files:\n%s\nhere:\n%s", sharedRef, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	out, stderr, code = runBinary(t, "trace", "--from", recPath, "--pod", ownRef)
	ids := map[string]bool{}
	for _, l := range jsonLines(t, out) {
		if l.Container != nil && l.Container.Name == "app" {
			ids[l.Container.ID] = true
			if crictlNames[l.Container.ID] == (named{}) && l.Container.ID != firstApp {
				t.Errorf("trace --from --pod %s: container %s, which crictl does not know", ownRef, l.Container.ID)
			}
		}
	}
	if code != exitOK || !ids[firstApp] || !ids[own.Containers["app"]] {
		t.Errorf("trace --from --pod %s: exit %d, app containers %v, want %s (attempt 0) and %s (attempt 1): %s", ownRef, code, ids, firstApp, own.Containers["app"], stderr)
	}
}

// generation is a generation line of story -o json.
type generation struct {
	Type, ID, Name, Ended string
	InitPIDs              string `json:"init_pids"`
}

// storyGenerations runs story --from recPath with args and returns the
// generations it tells.
func storyGenerations(t *testing.T, recPath string, args ...string) (gens []generation, stderr string, code int) {
	t.Helper()
	out, stderr, code := runBinary(t, append([]string{"--from", recPath, "story", "-o", "json"}, args...)...)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var g generation
		if err := json.Unmarshal([]byte(l), &g); err == nil && g.Type == "generation" {
			gens = append(gens, g)
		}
	}
	return gens, stderr, code
}

// containerdTasks is where containerd keeps its tasks' bundles, whose
// annotations name pods and containers; the DaemonSet mounts it.
const containerdTasks = "/run/containerd/io.containerd.runtime.v2.task"

// podSummary is each process of tree -o json's output as a sorted row of
// what names it in its pod: PID, container, pod, and whether it entered.
func podSummary(t *testing.T, out string) []string {
	t.Helper()
	var rows []string
	for _, l := range jsonLines(t, out) {
		row := fmt.Sprintf("%d %v entered=%t", l.PID, l.NSPid, l.EnteredBy != "")
		if c := l.Container; c != nil {
			row += fmt.Sprintf(" %s %s", c.Name, c.ID)
			if c.Pod != nil {
				row += fmt.Sprintf(" %s/%s %s", c.Pod.Namespace, c.Pod.Name, c.Pod.UID)
			}
		}
		rows = append(rows, row)
	}
	slices.Sort(rows)
	return rows
}

// waitForExec returns the host PID of the `sleep ARG` that crictl exec
// started.
func waitForExec(t *testing.T, arg string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && string(cmdline) == "sleep\x00"+arg+"\x00" {
				var pid int
				fmt.Sscan(e.Name(), &pid)
				return pid
			}
		}
	}
	t.Fatalf("crictl exec's sleep %s did not start", arg)
	return 0
}
