package pidmap

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// hostileRecordings are recordings no recorder writes, each of which once
// made a reader loop, crash or grow without end. FuzzReplay starts from
// them too.
var hostileRecordings = sync.OnceValue(func() map[string]string {
	chain := func(n int, childrenFirst bool) string {
		evs := make([]*events.Event, 0, n)
		for i := range n {
			pid := uint32(i + 1)
			if childrenFirst {
				pid = uint32(n - i)
			}
			evs = append(evs, at(ev(events.TypeProc, pid, pid-1, pid), t0))
		}
		return recording(t0, evs...)
	}
	return map[string]string{
		// 100's parent is 200, 200's is 100: neither is a root.
		"two-cycle": recording(t0,
			at(ev(events.TypeProc, 1, 0, 1), t0),
			at(ev(events.TypeProc, 100, 200, 100), t0),
			at(ev(events.TypeProc, 200, 100, 200), t0),
			at(ev(events.TypeProc, 300, 200, 300), t0),
		),
		"self-parent": recording(t0,
			at(ev(events.TypeProc, 100, 100, 100), t0),
		),
		// A cycle made by events after the snapshot: 20 (with a child) is
		// forked again, under its own grandchild.
		"cycle by events": recording(t0,
			at(ev(events.TypeProc, 1, 0, 1), t0),
			at(ev(events.TypeProc, 10, 1, 10), t0),
			at(ev(events.TypeProc, 20, 10, 20), t0),
			at(ev(events.TypeProc, 30, 20, 30), t0),
			at(ev(events.TypeExec, 10, 30, 10), t0+1),
		),
		"deep chain":           chain(100_000, false),
		"deep chain, reversed": chain(20_000, true),
	}
})

// TestReplayNeverLoops: every process of a hostile recording is walked
// once, where a loop was claimed the link that would close it is refused
// and marked, and each parent chain ends.
func TestReplayNeverLoops(t *testing.T) {
	for name, text := range hostileRecordings() {
		t.Run(name, func(t *testing.T) {
			tree := NewTree(16)
			begin := time.Now()
			if _, err := ReplayFile(strings.NewReader(text), At{}, tree, nil); err != nil {
				t.Fatal(err)
			}
			// Walked from the roots down, each once and all of them:
			// then no parent chain loops either.
			walked := map[uint32]bool{}
			tree.Walk(func(p *Proc, depth int) {
				if walked[p.PID] {
					t.Fatalf("%d walked twice", p.PID)
				}
				walked[p.PID] = true
				if (depth == 0) != (p.Parent() == nil) {
					t.Fatalf("%d at depth %d has parent %v", p.PID, depth, p.Parent())
				}
			})
			if len(walked) != tree.Len() {
				t.Errorf("walked %d of %d processes: a loop hides the rest", len(walked), tree.Len())
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	loops := func(text string) []string {
		tree := NewTree(16)
		if _, err := ReplayFile(strings.NewReader(text), At{}, tree, nil); err != nil {
			t.Fatal(err)
		}
		var out []string
		tree.Walk(func(p *Proc, _ int) {
			if p.ParentLoop {
				out = append(out, fmt.Sprintf("%d<-%d", p.PID, p.PPID))
			}
		})
		return out
	}
	for name, want := range map[string]string{
		"two-cycle":       "[100<-200]", // 200 was linked under 100 first
		"self-parent":     "[100<-100]",
		"cycle by events": "[10<-30]",
	} {
		if got := fmt.Sprint(loops(hostileRecordings()[name])); got != want {
			t.Errorf("%s: loops marked %s, want %s", name, got, want)
		}
	}
	if got := loops(hostileRecordings()["deep chain"]); len(got) != 0 {
		t.Errorf("a deep chain without a loop: %v marked", got)
	}
}

// TestReplayBoundsLines: a line longer than MaxLine is an error naming
// it, whatever follows (a header and then 10 GB without a newline would
// otherwise be read whole).
func TestReplayBoundsLines(t *testing.T) {
	text := recording(t0, at(ev(events.TypeProc, 1, 0, 1), t0)) + strings.Repeat("\x00", MaxLine+10)
	_, err := ReplayFile(strings.NewReader(text), At{}, NewTree(0), nil)
	if err == nil || !strings.Contains(err.Error(), "line 3: longer than") {
		t.Errorf("got %v, want line 3 refused as too long", err)
	}
}

// TestReplayMemoryIsBoundedByLiveProcesses: a recording of endless churn,
// each process in a pid namespace, credentials and namespace set of its
// own, leaves the tree's tables no larger than a bound.
func TestReplayMemoryIsBoundedByLiveProcesses(t *testing.T) {
	var b strings.Builder
	b.WriteString(recording(t0, at(ev(events.TypeProc, 1, 0, 1), t0)))
	const n = 50_000
	for i := range n {
		pid := uint32(2 + i%30000)
		e := at(ev(events.TypeFork, pid, 1, pid, 1), t0+int64(i)*2+1)
		e.PidNS[1] = uint32(5_000_000 + i)
		e.NS[events.NSPid], e.NS[events.NSNet] = e.PidNS[1], uint32(i)
		e.Cred.IDs.UID = uint32(i)
		b.Write(events.AppendJSON(nil, e))
		b.Write(events.AppendJSON(nil, exited(t0+int64(i)*2+2, 0, 1, pid, 1, pid, 1)))
	}
	tree := NewTree(DefaultExitedKept)
	if _, err := ReplayFile(strings.NewReader(b.String()), At{}, tree, nil); err != nil {
		t.Fatal(err)
	}
	if tree.Len() != 1 {
		t.Errorf("%d live, want 1", tree.Len())
	}
	// Live and remembered processes hold DefaultExitedKept+1 namespaces;
	// a sweep runs when the table has doubled.
	if got, most := tree.Namespaces(), 2*(DefaultExitedKept+2)+1; got > most {
		t.Errorf("%d pid namespaces held after %d came and went, want at most %d", got, n, most)
	}
	if len(tree.creds) > maxCreds || len(tree.nssets) > maxInterned {
		t.Errorf("%d credentials and %d namespace sets interned, want at most %d and %d", len(tree.creds), len(tree.nssets), maxCreds, maxInterned)
	}
	// What the remembered processes say is still answered.
	last := tree.LastHolder(uint32(2 + (n-1)%30000))
	if last == nil || tree.Namespace(last.NS().Inode) != last.NS() {
		t.Errorf("the last exited process's namespace is gone: %+v", last)
	}
}

// TestChildrenOfADeadInit: a pid namespace's init exits (reaper 0) while
// its children live on, until the kernel's kill reaches them, or for good
// in a recording that ends there: they are walked as roots, not hidden
// under the dead (found by FuzzReplay).
func TestChildrenOfADeadInit(t *testing.T) {
	tree := NewTree(16)
	tree.Apply(ev(events.TypeProc, 100, 1, 100, 1))
	tree.Apply(ev(events.TypeFork, 101, 100, 101, 2))
	tree.Apply(exited(t0, 0, 0, 100, 1, 100, 1))
	var walked []uint32
	tree.Walk(func(p *Proc, depth int) { walked = append(walked, p.PID) })
	if len(walked) != 1 || walked[0] != 101 || tree.Get(101).LiveParent() != nil {
		t.Errorf("walked %v, want 101 as a root", walked)
	}
}
