package events

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestDocsCoverEveryField checks that docs/ndjson.md and docs/recordings.md
// name every key and type the encoder writes: a field added to the feed
// without its documentation fails here.
func TestDocsCoverEveryField(t *testing.T) {
	var docs string
	for _, name := range []string{"../../docs/ndjson.md", "../../docs/recordings.md"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		docs += string(b)
	}
	// One event of every type, with every optional field present.
	var lines []byte
	for typ := TypeFork; typ < typeEnd; typ++ {
		ev := Event{Type: typ, PID: 2, TID: 3, PPID: 1, Levels: 2, EnteredBy: Key{PID: 1, Start: 1}, Thread: true, OldTID: 4, ArgsTruncated: true, Count: 1,
			StartBoot: 5, ParentStartBoot: 6, Start: 7, Zombie: true, OutsideInitCgroup: true,
			Cgroup: NewUnresolved(1, "/kubepods/pod1/c", &Container{ID: "c", Name: "n", Runtime: "r", Pod: &Pod{Namespace: "ns", Name: "p", UID: "u"}}, "why")}
		ev.NSPid[1] = 1
		ev.Sig.Number, ev.Sig.Sender.Levels, ev.Sig.Sender.StartBoot = 15, 1, 1
		ev.SetArgs([]string{"a"})
		ev.Ancestors[0] = Ancestor{PID: 1, NSPid: 1, StartBoot: 1}
		ev.NAncestors = 1
		ev.OldNS[NSNet] = 1
		ev.Cred = Cred{Known: true, UserLevels: 1}
		ev.ExeMemfd = true
		ev.Findings = []Finding{{Name: FindFileless, Time: 1, Reason: "why"}}
		ev.Cred.SetLSM([]byte("unconfined"))
		lines = AppendJSON(lines, &ev)
	}
	h := Header{Format: RecordFormat, Version: 1}
	lines = AppendHeader(lines, &h)

	keys := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		collectKeys(obj, keys)
		keys[obj["type"].(string)] = true
	}
	for key := range keys {
		if !strings.Contains(docs, "`"+key+"`") {
			t.Errorf("the docs do not name %q, which the encoder writes", key)
		}
	}
	if len(keys) < 40 {
		t.Errorf("only %d keys collected: the test lost its coverage", len(keys))
	}
}

// TestRecordingsDocListsEveryLineType: docs/recordings.md's list of what a
// recording holds names every line type record writes.
func TestRecordingsDocListsEveryLineType(t *testing.T) {
	b, err := os.ReadFile("../../docs/recordings.md")
	if err != nil {
		t.Fatal(err)
	}
	contents, _, _ := strings.Cut(string(b), "\n## ") // the first section: what a recording holds
	for typ := TypeFork; typ < typeEnd; typ++ {
		if !strings.Contains(contents, "`"+typ.String()+"`") {
			t.Errorf("docs/recordings.md's list of what a recording holds lacks %q", typ.String())
		}
	}
}

// TestArchitectureNamesEveryPackage: docs/ARCHITECTURE.md gives every
// package under internal/ its line.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../../docs/ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.Contains(string(b), "`internal/"+e.Name()+"`") {
			t.Errorf("docs/ARCHITECTURE.md does not name internal/%s", e.Name())
		}
	}
}

func collectKeys(obj map[string]any, keys map[string]bool) {
	for k, v := range obj {
		keys[k] = true
		if inner, ok := v.(map[string]any); ok {
			collectKeys(inner, keys)
		}
	}
}

// TestDocsShipWithTheProject checks that what users read points only to
// what they have.
func TestDocsShipWithTheProject(t *testing.T) {
	files := []string{"../../README.md"}
	entries, _ := os.ReadDir("../../docs")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".md") { // and images, which say nothing
			files = append(files, "../../docs/"+e.Name())
		}
	}
	if len(files) < 5 {
		t.Fatalf("docs/ holds %d files", len(files)-1)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "../shared") || strings.Contains(string(b), "SPEC.md") {
			t.Errorf("%s points to the project's internal contract, which users do not have", name)
		}
	}
}
