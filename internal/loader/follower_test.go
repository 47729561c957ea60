package loader

import (
	"context"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// replayed is a pidmap.Source that hands over fixed records: no snapshot,
// nothing lost.
type replayed [][]byte

func (r replayed) Snapshot(func([]byte) error) error { return nil }
func (r replayed) Lost() (uint64, error)             { return 0, nil }

func (r replayed) Run(_ context.Context, handle func([]byte) error, idle func() error) error {
	for _, raw := range r {
		if err := handle(raw); err != nil {
			return err
		}
	}
	return idle()
}

// TestFollowerPassesOneExitPerProcess: when two threads of a process both
// report its end, the tree and the feed see it end once.
func TestFollowerPassesOneExitPerProcess(t *testing.T) {
	e := nspidtraceNsptEvent{Type: 1, Pid: 10, Tid: 10, Ppid: 1, Levels: 1, StartNs: 5000}
	e.Nspid[0], e.Pidns[0], e.Nsppid[0] = 10, 4026531836, 1
	fork := record(t, e)
	e.Type, e.Reaper = 3, 1
	exit := record(t, e)
	e.Tid = 11 // the other thread, also seeing the group dead
	second := record(t, e)

	f := pidmap.NewFollower(replayed{fork, exit, second}, pidmap.NewTree(pidmap.DefaultExitedKept), events.Decoder{})
	exits := 0
	f.OnEvent = func(ev *events.Event) error {
		if ev.Type == events.TypeExit {
			exits++
		}
		return nil
	}
	if err := f.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if exits != 1 {
		t.Errorf("the feed saw %d exits of one process, want 1", exits)
	}
}
