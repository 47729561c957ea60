package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestStoryOfAnIncident records the incident of issue 36 for real: a
// container whose docker exec'd shell kills a sibling, renames itself and
// exits 3; a docker restart; a docker rm and run of the same name. story
// --container tells the three generations (two of one ID), who ended each,
// the entry and the docker exec that asked for it; the shell's story tells
// what it did, in order.
func TestStoryOfAnIncident(t *testing.T) {
	testenv.Require(t)
	testenv.Docker(t)
	name := uniqueName("story")
	testenv.RemoveTestContainer(t, name)
	path := filepath.Join(t.TempDir(), "incident.ndjson")
	rec := startRecord(t, path)

	testenv.DockerRun(t, []string{"--name", name}, "sh", "-c", "sleep 300 & sleep 301 & wait")
	time.Sleep(300 * time.Millisecond)
	exit3 := exec.Command("docker", "exec", name, "sh", "-c", `kill -9 $(pidof sleep | cut -d" " -f1); echo -n renamed > /proc/self/comm; sleep 0.2; exit 3`)
	if err := exit3.Run(); exit3.ProcessState == nil || exit3.ProcessState.ExitCode() != 3 {
		t.Fatalf("docker exec: %v, want exit 3", err)
	}
	testenv.DockerCmd(t, "restart", "-t", "1", name)
	time.Sleep(300 * time.Millisecond)
	testenv.DockerCmd(t, "rm", "-f", name)
	testenv.DockerRun(t, []string{"--name", name}, "sleep", "300")
	time.Sleep(300 * time.Millisecond)
	rec.Process.Signal(syscall.SIGINT)
	rec.Wait()

	out, stderr, code := runBinary(t, "--from", path, "story", "--container", name, "-o", "json")
	if code != exitOK {
		t.Fatalf("story --container: exit %d: %s", code, stderr)
	}
	type object struct {
		Type       string `json:"type"`
		Generation int    `json:"generation"`
		ID         string `json:"id"`
		Init       string `json:"init"`
		Ended      string `json:"ended"`
		KilledBy   string `json:"killed_by"`
		Key        string `json:"key"`
		Comm       string `json:"comm"`
		Fact       string `json:"fact"`
		Text       string `json:"text"`
		AskedBy    *struct {
			Comm, Argv, Evidence string
		} `json:"asked_by"`
	}
	var gens, entries []object
	facts := map[string][]object{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var o object
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		switch o.Type {
		case "generation":
			gens = append(gens, o)
		case "entry":
			entries = append(entries, o)
		case "fact":
			facts[o.Key] = append(facts[o.Key], o)
		}
	}
	if len(gens) != 3 || gens[0].ID != gens[1].ID || gens[1].ID == gens[2].ID || gens[0].Init == gens[1].Init {
		t.Fatalf("generations: %+v; want 3, the first two of one ID with two inits", gens)
	}
	for _, g := range gens[:2] {
		if !strings.Contains(g.Ended, "killed by signal 9") || g.KilledBy == "" {
			t.Errorf("generation %d ended %q, killed by %q: want SIGKILL and its sender", g.Generation, g.Ended, g.KilledBy)
		}
	}
	if gens[2].Ended != "" {
		t.Errorf("the running generation ended: %+v", gens[2])
	}
	if len(entries) != 1 || entries[0].Generation != 1 || entries[0].AskedBy == nil || entries[0].AskedBy.Comm != "docker" ||
		!strings.Contains(entries[0].AskedBy.Argv, "exec "+name) || !strings.Contains(entries[0].AskedBy.Evidence, "its argv names "+name) {
		t.Fatalf("entries: %+v; want the docker exec, in generation 1, asked by docker exec %s", entries, name)
	}
	var kinds []string
	for _, f := range facts[entries[0].Key] {
		kinds = append(kinds, f.Fact)
	}
	want := []string{"born", "finding", "rename", "cred", "exec", "sent", "rename", "children", "exit"}
	if got := strings.Join(compact(kinds), " "); !strings.Contains(got, "exec sent rename children exit") || kinds[0] != "born" {
		t.Errorf("the shell's story: %v, want the order %v", kinds, want)
	}
	// The story's key is the recording's: the line of the shell's exec.
	for _, l := range readLines(t, path) {
		if l.Type == "exec" && len(l.Args) > 2 && strings.HasPrefix(l.Args[2], "kill -9") && l.Key != entries[0].Key {
			t.Errorf("the shell's exec line has key %s, its story %s", l.Key, entries[0].Key)
		}
	}
	shell := facts[entries[0].Key]
	if last := shell[len(shell)-1]; last.Text != "exited with 3; its children go to host PID "+strings.Split(gens[0].Init, "@")[0] {
		t.Errorf("the shell's exit: %q", last.Text)
	}

	// The report of the same recording opens on the shell's story, its
	// facts as text (the machine may run other containers beside).
	page := filepath.Join(t.TempDir(), "incident.html")
	if _, stderr, code := runBinary(t, "report", "--from", path, "-o", page); code != exitOK {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	dom := chromium(t, page+"#story="+entries[0].Key)
	if !strings.Contains(dom, "<h3>renamed "+entries[0].Key+"</h3>") || !strings.Contains(dom, "sent  sent SIGKILL to sleep(") {
		t.Errorf("the report does not open on the shell's story:\n%.3000s", dom)
	}

	// The same in text, one fact per line, and the story of one process by
	// its key.
	text, _, code := runBinary(t, "--from", path, "story", entries[0].Key)
	if code != exitOK || !strings.Contains(text, "sent      sent SIGKILL to sleep(") || !strings.Contains(text, `renamed "sh" -> "renamed"`) {
		t.Errorf("story %s: exit %d\n%s", entries[0].Key, code, text)
	}
}

// compact drops repeated kinds in a row: runc's credential changes.
func compact(kinds []string) []string {
	var out []string
	for _, k := range kinds {
		if len(out) == 0 || out[len(out)-1] != k {
			out = append(out, k)
		}
	}
	return out
}
