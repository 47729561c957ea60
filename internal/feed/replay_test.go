package feed

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestReplayKeepsWhatLiveKeeps: trace --from writes the recorded lines
// that the filters, --pid and --container keep, and says when what it was
// asked for is not in the recording.
func TestReplayKeepsWhatLiveKeeps(t *testing.T) {
	at := func(e *events.Event, typ events.Type, s int64) *events.Event {
		e.Type, e.Time = typ, testenv.T0+s*1e9
		return e
	}
	cg := events.NewCgroup(0, "/docker/"+web.ID, web)
	init := at(ev(events.TypeFork, 200, 1, web, ctrNS, 200, 1), events.TypeFork, 1)
	init.NS[events.NSNet] = 4026532999
	path := testenv.WriteRecording(t, "r.ndjson", []*events.Event{
		testenv.HostProc(1, 0, nil),
		testenv.HostProc(100, 1, nil),
		init,
		at(testenv.HostProc(101, 100, nil), events.TypeFork, 2),
		at(testenv.HostProc(101, 100, nil), events.TypeExec, 3),
		at(ev(events.TypeExec, 200, 1, web, ctrNS, 200, 1), events.TypeExec, 4),
		at(testenv.HostProc(300, 1, cg), events.TypeFork, 5), // the container's cgroup, not its namespace
		at(testenv.HostProc(101, 100, nil), events.TypeExit, 6),
	}, "")
	spec := query.Spec{From: []string{path}}
	replay := func(spec query.Spec, pid, types string, snapshot bool) (string, error) {
		t.Helper()
		filter, err := NewFilter(types, "", snapshot)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Replay(spec, pid, filter, zerolog.Nop(), &out)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if line != "" {
				var e events.Event
				if perr := events.Parse([]byte(line), &e); perr != nil {
					t.Fatalf("%s: %v", line, perr)
				}
				got = append(got, fmt.Sprintf("%s:%d", e.Type, e.PID))
			}
		}
		return strings.Join(got, " "), err
	}
	for _, tt := range []struct {
		name       string
		spec       query.Spec
		pid, types string
		snapshot   bool
		want       string
	}{
		{"default", spec, "", "", false, "fork:200 fork:101 exec:101 exec:200 fork:300 exit:101"},
		{"exec only", spec, "", "exec", false, "exec:101 exec:200"},
		{"snapshot", spec, "", "exit", true, "proc:1 proc:100 exit:101"},
		{"--pid", spec, "100", "", false, "fork:101 exec:101 exit:101"},
		{"--container", query.Spec{From: spec.From, Container: "web"}, "", "", false, "fork:200 exec:200 fork:300"},
		{"--at", query.Spec{From: spec.From, At: "+3s"}, "", "", false, "fork:200 fork:101 exec:101"},
		{"--netns", query.Spec{From: spec.From, NetNS: "4026532999"}, "", "", false, "fork:200"},
	} {
		got, err := replay(tt.spec, tt.pid, tt.types, tt.snapshot)
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	var nf fault.NotFound
	var u fault.Usage
	for _, tt := range []struct {
		name string
		spec query.Spec
		want any
	}{
		{"a container of none", query.Spec{From: spec.From, Container: "db"}, &nf},
		{"a netns of none", query.Spec{From: spec.From, NetNS: "net:[4026530000]"}, &nf},
		{"a netns by name", query.Spec{From: spec.From, NetNS: "blue"}, &u},
		{"a live PID as --pidns", query.Spec{From: spec.From, PidNS: "200"}, &u},
	} {
		if _, err := replay(tt.spec, "", "", false); !errors.As(err, tt.want) {
			t.Errorf("%s: %v, want %T", tt.name, err, tt.want)
		}
	}
}
