package watch

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestWatchStepsThroughTheSelection: in a recording, ←/→ step through the
// events of what is watched (--container, --pidns), not every event of
// the host's.
func TestWatchStepsThroughTheSelection(t *testing.T) {
	const ctrNS = 4026532300
	inCtr := func(typ events.Type, pid, ppid uint32, at int64) *events.Event {
		e := testenv.HostProc(pid, ppid, nil)
		e.Type, e.Time, e.Levels = typ, testenv.T0+at, 2
		e.NSPid[1], e.PidNS[1], e.NSPPid[1] = pid-100, ctrNS, 0
		return e
	}
	onHost := func(pid uint32, at int64) *events.Event {
		e := testenv.HostProc(pid, 1, nil)
		e.Type, e.Time = events.TypeFork, testenv.T0+at
		return e
	}
	path := testenv.WriteRecording(t, "steps.ndjson", []*events.Event{
		testenv.HostProc(1, 0, nil),
		onHost(10, 1), onHost(11, 2), // positions 1, 2
		inCtr(events.TypeFork, 101, 1, 3), // 3: the container's
		onHost(12, 4), onHost(13, 5), onHost(14, 6),
		inCtr(events.TypeExec, 101, 1, 7), // 7: the container's
		onHost(15, 8),
	}, "")
	w, err := OpenReplay(query.Spec{From: []string{path}, PidNS: fmt.Sprintf("pid:[%d]", ctrNS)}, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Positions() != 8 {
		t.Fatalf("%d positions, want 8", w.Positions())
	}
	for _, tt := range []struct{ pos, n, want int }{
		{8, -1, 7}, {7, -1, 3}, {5, -1, 3}, {3, -1, 0}, {0, +1, 3}, {3, +1, 7}, {4, +1, 7}, {7, +1, 8}, {0, +2, 7},
	} {
		if got := w.Step(tt.pos, tt.n); got != tt.want {
			t.Errorf("Step(%d, %+d) = %d, want %d", tt.pos, tt.n, got, tt.want)
		}
	}
	// Without a selection, every event is a step.
	all, err := OpenReplay(query.Spec{From: []string{path}}, 0, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	if got := all.Step(5, -1); got != 4 {
		t.Errorf("unselected Step(5, -1) = %d, want 4", got)
	}
}
