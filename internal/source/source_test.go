package source

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// TestReplayErrors: what a user gets for --from and --at: a file that is
// no recording is a usage error, an instant outside it not found, a bad
// --at a usage error; a recording answers.
func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.ndjson")
	os.WriteFile(good, []byte(`{"type":"header","format":"nspidtrace-record","version":1,"start":"2026-11-23T07:39:05Z"}`+"\n"+
		`{"time":"2026-11-23T07:39:05.1Z","type":"proc","pid":7,"ppid":0,"nspid":[7],"pidns":[4026531836],"nsppid":[0],"comm":"bash"}`+"\n"), 0o600)
	notes := filepath.Join(dir, "notes.txt")
	os.WriteFile(notes, []byte("not a recording\n"), 0o600)

	tree := pidmap.NewTree(0)
	if _, err := Replay([]string{good}, "", zerolog.Nop(), tree, nil); err != nil || tree.Get(7) == nil {
		t.Fatalf("a recording: %v", err)
	}
	var usage fault.Usage
	var nf fault.NotFound
	if _, err := Replay([]string{notes}, "", zerolog.Nop(), pidmap.NewTree(0), nil); !errors.As(err, &usage) {
		t.Errorf("a file that is no recording: %v, want a usage error", err)
	}
	if _, err := Replay([]string{good}, "2020-01-01T00:00:00Z", zerolog.Nop(), pidmap.NewTree(0), nil); !errors.As(err, &nf) {
		t.Errorf("an instant before the recording: %v, want not found", err)
	}
	if _, err := Replay([]string{good}, "yesterday", zerolog.Nop(), pidmap.NewTree(0), nil); !errors.As(err, &usage) {
		t.Errorf("a bad --at: %v, want a usage error", err)
	}
}
