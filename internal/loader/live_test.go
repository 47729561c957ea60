package loader

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// churn forks, execs and exits processes, kills middle parents (their
// children are reparented), builds nested pid namespaces and tears them
// down, and enters a long-lived one ($1) with nsenter, leaving sleepers.
const churn = `
set -u
for i in $(seq 40); do /bin/true; sh -c 'exit 3'; done &
for i in $(seq 8); do sh -c 'sleep 20 & sleep 20 & kill -9 $$'; done &
for i in $(seq 4); do unshare --pid --fork sh -c 'unshare --pid --fork sh -c "sleep 0.2"; sleep 0.1'; done &
for i in $(seq 4); do nsenter --target "$1" --pid sh -c 'sleep 20 & exit 0'; done &
wait
`

// TestLiveTreeMatchesProc runs the live tree through a churn, then compares
// it with the host's /proc for every live process.
func TestLiveTreeMatchesProc(t *testing.T) {
	testenv.Require(t)
	holder := testenv.NewPidNS(t).Holder

	tr, err := Open(Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	boot, err := BootToUnix()
	if err != nil {
		t.Fatal(err)
	}
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	f := pidmap.NewFollower(tr, tree, events.Decoder{BootToUnix: boot})
	var history []string
	var marker atomic.Uint32 // a process whose exit says the tree caught up
	caughtUp := make(chan struct{})
	f.OnEvent = func(ev *events.Event) error {
		history = append(history, string(events.AppendJSON(nil, ev)))
		if ev.Type == events.TypeExit && !ev.Thread && ev.PID != 0 && ev.PID == marker.Load() {
			close(caughtUp)
		}
		return nil
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// Long-lived: a subreaper with an orphaned grandchild, and nested
	// namespaces, all outliving the comparison.
	subreaper := testenv.Helper("subreaper", 20)
	nested := exec.Command("unshare", "--pid", "--fork", "--kill-child", "sh", "-c", "sleep 20 & unshare --pid --fork --kill-child sleep 20")
	for _, c := range []*exec.Cmd{subreaper, nested} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { c.Process.Kill(); c.Wait() }()
	}
	// Output to a file: the orphaned sleepers would hold a pipe open.
	out, err := os.Create(filepath.Join(t.TempDir(), "churn.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", churn, "churn", strconv.Itoa(holder))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		data, _ := os.ReadFile(out.Name())
		t.Fatalf("churn: %v\n%s", err, data)
	}
	time.Sleep(500 * time.Millisecond) // the subreaper's orphan has been handed over
	// /proc is read before the tree stops and after: on a busy machine
	// (a build beside the tests) processes come and go meanwhile, and
	// only those alive, unchanged, across both reads are compared.
	firstRead := time.Now()
	before := readProcs(t)
	// The tree stops only once it has followed everything up to the first
	// read: a marker started after it has exited in the tree.
	m := exec.Command("cat") // it exits once its input closes: after Store
	in, err := m.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	marker.Store(uint32(m.Process.Pid))
	in.Close()
	m.Wait()
	select {
	case <-caughtUp:
	case <-time.After(10 * time.Second):
		t.Fatal("the tree did not follow a process's exit within 10 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	after := readProcs(t)
	if f.Resyncs() != 0 {
		t.Logf("the tree was resynced %d times after lost events", f.Resyncs())
	}

	var got events.Event
	compared, changed := 0, 0
	sawSubreaperChild := false
	for pid, truth := range after {
		if was, ok := before[pid]; !ok || !sameLife(was, truth) {
			changed++
			continue
		}
		p := tree.Get(pid)
		if p == nil {
			t.Errorf("/proc has %d (%s) %v before and after the tree stopped; the tree does not", pid, truth.CommString(), truth.NSPid[:truth.Levels])
			logHistory(t, history, pid)
			continue
		}
		compared++
		p.Fill(&got, 0)
		if !slices.Equal(got.NSPid[:got.Levels], truth.NSPid[:truth.Levels]) ||
			!slices.Equal(got.PidNS[:got.Levels], truth.PidNS[:truth.Levels]) || got.PPID != truth.PPID {
			t.Errorf("%d (%s): tree nspid %v pidns %v ppid %d; /proc %v %v %d", pid, truth.CommString(),
				got.NSPid[:got.Levels], got.PidNS[:got.Levels], got.PPID, truth.NSPid[:truth.Levels], truth.PidNS[:truth.Levels], truth.PPID)
			logHistory(t, history, pid, got.PPID)
		}
		if truth.PPID == uint32(subreaper.Process.Pid) && truth.CommString() == "sleep" {
			sawSubreaperChild = true
		}
	}
	// Nothing in the tree that was in neither read, though born before the
	// first: it exited before then, and the tree, still following, missed
	// it. (One born after may have come and gone between the reads.)
	tree.Walk(func(p *pidmap.Proc, _ int) {
		_, inBefore := before[p.PID]
		_, inAfter := after[p.PID]
		bornBefore := p.StartTime != 0 && p.StartTime < firstRead.Add(-100*time.Millisecond).UnixNano()
		if !inBefore && !inAfter && bornBefore && p.PID != 1 {
			if _, err := os.Stat("/proc/" + strconv.Itoa(int(p.PID))); err == nil {
				return // alive but unreadable
			}
			t.Errorf("the tree has %d (%s), born before the first read of /proc, which had it in neither read", p.PID, p.CommString())
		}
	})
	if !sawSubreaperChild {
		t.Error("the subreaper's orphaned grandchild is not its child in /proc: the churn did not test reparenting to a subreaper")
	}
	t.Logf("compared %d live processes with /proc (%d more were new or changed in the second read)", compared, changed)
}

// readProcs reads every readable process in /proc, by host PID, with its
// start in Start (clock ticks).
func readProcs(t *testing.T) map[uint32]*events.Event {
	t.Helper()
	pids, err := procfs.ListPIDs(procfs.ProcRoot)
	if err != nil {
		t.Fatal(err)
	}
	procs := make(map[uint32]*events.Event, len(pids))
	for _, pid := range pids {
		ev := new(events.Event)
		// Not readable: exited, a zombie, or a process this host hides
		// even from root (here PID 1, which the task iterator does not
		// visit).
		if err := procfs.ReadProc(procfs.ProcRoot, pid, ev); err != nil || ev.PidNS[ev.Levels-1] == 0 {
			continue
		}
		ticks, err := procfs.StartTicks(procfs.ProcRoot, pid)
		if err != nil {
			continue
		}
		ev.Start = int64(ticks)
		procs[ev.PID] = ev
	}
	return procs
}

// sameLife reports whether two reads of /proc saw one process, unchanged
// in what the comparison looks at.
func sameLife(a, b *events.Event) bool {
	return a.Start == b.Start && a.PPID == b.PPID && a.Levels == b.Levels &&
		slices.Equal(a.NSPid[:a.Levels], b.NSPid[:b.Levels]) && slices.Equal(a.PidNS[:a.Levels], b.PidNS[:b.Levels])
}

// logHistory logs the events the tree was given about pids.
func logHistory(t *testing.T, history []string, pids ...uint32) {
	for _, h := range history {
		for _, pid := range pids {
			if strings.Contains(h, `"pid":`+strconv.Itoa(int(pid))+`,`) {
				t.Log(h[:min(len(h), 330)])
				break
			}
		}
	}
}
