package loader

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	f.OnEvent = func(ev *events.Event) error {
		history = append(history, string(events.AppendJSON(nil, ev)))
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
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Resyncs() != 0 {
		t.Logf("the tree was resynced %d times after lost events", f.Resyncs())
	}

	pids, err := procfs.ListPIDs(procfs.ProcRoot)
	if err != nil {
		t.Fatal(err)
	}
	var truth, got events.Event
	compared, unreadable := 0, 0
	seen := map[uint32]bool{}
	sawSubreaperChild := false
	for _, pid := range pids {
		err := procfs.ReadProc(procfs.ProcRoot, pid, &truth)
		if errors.Is(err, procfs.ErrNoProcess) {
			continue // exited, or a zombie
		} else if err != nil || truth.PidNS[truth.Levels-1] == 0 {
			// A process this host hides even from root: here PID 1, the
			// sandbox's agent, which the task iterator does not visit.
			unreadable++
			continue
		}
		seen[truth.PID] = true
		p := tree.Get(truth.PID)
		if p == nil {
			t.Errorf("/proc has %d (%s) %v; the tree does not", truth.PID, truth.CommString(), truth.NSPid[:truth.Levels])
			for _, h := range history {
				if strings.Contains(h, `"pid":`+strconv.Itoa(int(truth.PID))+`,`) {
					t.Log(h[:min(len(h), 330)])
				}
			}
			continue
		}
		compared++
		p.Fill(&got, 0)
		if !slices.Equal(got.NSPid[:got.Levels], truth.NSPid[:truth.Levels]) ||
			!slices.Equal(got.PidNS[:got.Levels], truth.PidNS[:truth.Levels]) || got.PPID != truth.PPID {
			t.Errorf("%d (%s): tree nspid %v pidns %v ppid %d; /proc %v %v %d", truth.PID, truth.CommString(),
				got.NSPid[:got.Levels], got.PidNS[:got.Levels], got.PPID, truth.NSPid[:truth.Levels], truth.PidNS[:truth.Levels], truth.PPID)
			for _, h := range history {
				if strings.Contains(h, `"pid":`+strconv.Itoa(int(truth.PID))+`,`) || strings.Contains(h, `"pid":`+strconv.Itoa(int(got.PPID))+`,`) {
					t.Log(h[:min(len(h), 200)], h[max(0, len(h)-80):])
				}
			}
		}
		if truth.PPID == uint32(subreaper.Process.Pid) && truth.CommString() == "sleep" {
			sawSubreaperChild = true
		}
	}
	tree.Walk(func(p *pidmap.Proc, _ int) {
		if !seen[p.PID] && p.PID != 1 {
			if _, err := exec.Command("test", "-d", "/proc/"+strconv.Itoa(int(p.PID))).Output(); err == nil {
				return // alive but unreadable
			}
			t.Errorf("the tree has %d (%s), which /proc does not", p.PID, p.CommString())
		}
	})
	if !sawSubreaperChild {
		t.Error("the subreaper's orphaned grandchild is not its child in /proc: the churn did not test reparenting to a subreaper")
	}
	t.Logf("compared %d live processes with /proc (%d unreadable there)", compared, unreadable)
}
