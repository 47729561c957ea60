package loader

import (
	"context"
	"errors"
	"fmt"
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

// TestFollowerTellsAnExecsCredentials: the kernel side does not trace
// execve's entry and exit, so the follower writes the cred line of an exec
// that changed the credentials (a set-user-ID program), after the exec,
// from the tree's credentials before it. After unshare(CLONE_NEWUSER), which
// changed them itself, an exec that keeps them writes none.
func TestFollowerTellsAnExecsCredentials(t *testing.T) {
	proc := func(typ, euid, userLevels uint32) nspidtraceNsptEvent {
		e := nspidtraceNsptEvent{Type: typ, Pid: 10, Tid: 10, Ppid: 1, Levels: 1, StartNs: 5000}
		e.Nspid[0], e.Pidns[0], e.Nsppid[0] = 10, 4026531836, 1
		e.Cred.Ids.Uid, e.Cred.Ids.Euid, e.Cred.Ids.Suid, e.Cred.Ids.Fsuid = 1000, euid, euid, euid
		e.Cred.UserLevels = userLevels
		return e
	}
	exec := func(euid, userLevels uint32) []byte {
		return record(t, nspidtraceNsptExecEvent{E: proc(2, euid, userLevels)})
	}
	unshare := proc(5, 1000, 2)
	unshare.Cred.Ids.CapEffective = 1<<41 - 1 // every capability, in its own user namespace
	unshare.Arg = 0x10000000                  // CLONE_NEWUSER

	for _, tt := range []struct {
		name    string
		records [][]byte
		want    string // the types the feed sees, with a cred's syscall and euid change
	}{
		{"set-user-ID exec", [][]byte{record(t, proc(1, 1000, 1)), exec(0, 1)}, "fork exec cred(execve 1000->0)"},
		{"plain exec", [][]byte{record(t, proc(1, 1000, 1)), exec(1000, 1)}, "fork exec"},
		{"exec after unshare -U", [][]byte{record(t, proc(1, 1000, 1)), record(t, unshare), record(t, nspidtraceNsptExecEvent{E: func() nspidtraceNsptEvent {
			e := unshare
			e.Type = 2
			return e
		}()})}, "fork unshare exec"},
	} {
		f := pidmap.NewFollower(replayed(tt.records), pidmap.NewTree(pidmap.DefaultExitedKept), events.Decoder{})
		var seen []string
		f.OnEvent = func(ev *events.Event) error {
			s := ev.Type.String()
			if ev.Type == events.TypeCred {
				s += fmt.Sprintf("(%s %d->%d)", events.SyscallName(ev.Syscall), ev.OldIDs.EUID, ev.Cred.EUID)
			}
			seen = append(seen, s)
			return nil
		}
		if err := f.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(seen, " "); got != tt.want {
			t.Errorf("%s: the feed saw %q, want %q", tt.name, got, tt.want)
		}
	}
}
