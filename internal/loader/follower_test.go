package loader

import (
	"context"
	"errors"
	"strings"
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

// TestFromSnapshot: a snapshot lists processes by PID, so a child can come
// before its parent; the tree links it all the same. A record that does not
// decode is an error that says so, and read's own error is returned as is.
func TestFromSnapshot(t *testing.T) {
	proc := func(pid, ppid uint32) []byte {
		e := nspidtraceNsptEvent{Type: 1, Pid: pid, Tid: pid, Ppid: ppid, Levels: 1, StartNs: 5000}
		e.Nspid[0], e.Pidns[0], e.Nsppid[0] = pid, 4026531836, ppid
		return record(t, e)
	}
	snapshot := func(records ...[]byte) func(func([]byte) error) error {
		return func(handle func([]byte) error) error {
			for _, raw := range records {
				if err := handle(raw); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// PID 5 was handed out after the PIDs wrapped: its parent, 300, is listed after it.
	tree, err := pidmap.FromSnapshot(snapshot(proc(1, 0), proc(5, 300), proc(300, 1)), events.Decoder{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Len() != 3 {
		t.Fatalf("the tree has %d processes, want 3", tree.Len())
	}
	if parent := tree.Get(5).Parent(); parent == nil || parent.PID != 300 {
		t.Errorf("PID 5's parent is %v, want PID 300", parent)
	}
	if parent := tree.Get(300).Parent(); parent == nil || parent.PID != 1 {
		t.Errorf("PID 300's parent is %v, want PID 1", parent)
	}

	if _, err := pidmap.FromSnapshot(snapshot(proc(1, 0), []byte{1, 2, 3}), events.Decoder{}, 2); err == nil || !strings.Contains(err.Error(), "decode a snapshot record") {
		t.Errorf("a truncated record gave %v, want an error that says it did not decode", err)
	}
	_, err = pidmap.FromSnapshot(func(func([]byte) error) error { return ErrNoPrivileges }, events.Decoder{}, 0)
	if !errors.Is(err, ErrNoPrivileges) {
		t.Errorf("read's error came back as %v, want ErrNoPrivileges", err)
	}
}
