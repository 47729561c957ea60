package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestBuildWindowAndContainer: --since and --until keep the processes that
// overlap them; --container keeps its own and its generations; what the
// recording does not hold is an error; the page carries the data escaped.
func TestBuildWindowAndContainer(t *testing.T) {
	web := &events.Container{ID: strings.Repeat("c", 64), Name: "web", Runtime: "docker"}
	at := func(e *events.Event, typ events.Type, s int64) *events.Event {
		e.Type, e.Time, e.StartBoot = typ, testenv.T0+s*1e9, uint64(e.PID)
		return e
	}
	init := testenv.HostProc(200, 1, events.NewCgroup(0, "/docker/"+web.ID, web))
	init.Levels, init.NSPid[1], init.PidNS[1] = 2, 1, 4026532300
	early, gone := testenv.HostProc(100, 1, nil), testenv.HostProc(100, 1, nil)
	early.SetComm("</script><b>x")
	gone.SetComm("</script><b>x")
	path := testenv.WriteRecording(t, "r.ndjson", []*events.Event{
		at(testenv.HostProc(1, 0, nil), events.TypeProc, 0),
		at(early, events.TypeFork, 1), at(gone, events.TypeExit, 2),
		at(init, events.TypeFork, 5),
		at(testenv.HostProc(300, 1, nil), events.TypeFork, 8),
	}, "")
	d, err := Build(Request{From: []string{path}}, zerolog.Nop())
	if err != nil || len(d.Procs) != 4 || len(d.Gens) != 1 || d.Span != 8000 {
		t.Fatalf("the whole recording: %v, %d processes, %d generations, span %v", err, len(d.Procs), len(d.Gens), d.Span)
	}
	if d, err := Build(Request{From: []string{path}, Since: "+3s"}, zerolog.Nop()); err != nil || len(d.Procs) != 3 || d.Dropped != 1 {
		t.Errorf("--since +3s: %v, %d processes, %d left out; want the one that exited at 2 s left out", err, len(d.Procs), d.Dropped)
	}
	if d, err := Build(Request{From: []string{path}, Container: "web"}, zerolog.Nop()); err != nil || len(d.Procs) != 1 || d.Procs[0].PIDs[1] != 1 {
		t.Errorf("--container web: %v, %+v", err, d)
	}
	var nf fault.NotFound
	var u fault.Usage
	if _, err := Build(Request{From: []string{path}, Container: "db"}, zerolog.Nop()); !errors.As(err, &nf) {
		t.Errorf("--container db: %v, want not found", err)
	}
	if _, err := Build(Request{From: []string{path}, Since: "+1h"}, zerolog.Nop()); !errors.As(err, &nf) {
		t.Errorf("--since past the end: %v, want not found", err)
	}
	if _, err := Build(Request{From: []string{path}, Since: "+5s", Until: "+2s"}, zerolog.Nop()); !errors.As(err, &u) {
		t.Errorf("--since after --until: %v, want a usage error", err)
	}
	var page bytes.Buffer
	if err := Write(&page, d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "</script><b>") || !strings.Contains(page.String(), `\u003c/script\u003e\u003cb\u003ex`) {
		t.Error("the page holds a comm unescaped")
	}
	if strings.Count(page.String(), "</script>") != 2 { // the data's and the script's own
		t.Errorf("%d </script> in the page, want 2", strings.Count(page.String(), "</script>"))
	}
}
