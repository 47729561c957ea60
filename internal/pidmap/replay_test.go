package pidmap

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// recording writes a header and events as a recording's lines.
func recording(start int64, evs ...*events.Event) string {
	h := events.Header{Format: events.RecordFormat, Version: 1, Hostname: "h", Kernel: "k", BootID: "b", Start: start}
	b := events.AppendHeader(nil, &h)
	for _, e := range evs {
		b = events.AppendJSON(b, e)
	}
	return string(b)
}

func at(e *events.Event, t int64) *events.Event { e.Time = t; return e }

// exited is the exit event of pid at the given levels, as the kernel sends it.
func exited(t int64, status, reaper, pid, ppid uint32, nspid ...uint32) *events.Event {
	e := ev(events.TypeExit, pid, ppid, nspid...)
	e.Time, e.ExitStatus, e.Reaper = t, status, reaper
	return e
}

const t0 = int64(1795419545000000000)

// incident: init and a container; PID 50 in the container exits with 3 at
// t0+3s and is reused at t0+5s; the recording stops at t0+7s.
func incident() string {
	return recording(t0,
		at(ev(events.TypeProc, 1, 0, 1), t0+1000),
		at(ev(events.TypeProc, 100, 1, 100, 1), t0+2000),
		at(ev(events.TypeFork, 150, 100, 150, 50), t0+1e9),
		exited(t0+3e9, 3<<8, 100, 150, 100, 150, 50),
		at(ev(events.TypeFork, 160, 100, 160, 50), t0+5e9),
		&events.Event{Type: events.TypeEnd, Time: t0 + 7e9},
	)
}

func TestReplayOutsideTheRecording(t *testing.T) {
	for _, a := range []At{{Time: t0 - 1}, {Time: t0 + 7e9 + 1}, {Relative: true, Offset: 8 * time.Second}} {
		_, err := ReplayFile(strings.NewReader(incident()), a, NewTree(0), nil)
		var rerr *RangeError
		if !errors.As(err, &rerr) || rerr.Start != t0 || rerr.End != t0+7e9 {
			t.Errorf("at %+v: %v, want a RangeError from t0 to t0+7s", a, err)
		}
	}
	if _, err := ReplayFile(strings.NewReader(incident()), At{Time: t0 + 7e9}, NewTree(0), nil); err != nil {
		t.Errorf("at the end: %v", err)
	}
}

func TestReplaySkipsUnknownTypesAndRefusesEmptyFiles(t *testing.T) {
	text := incident() + `{"time":"2026-11-23T07:39:20Z","type":"from-the-future","pid":1}` + "\n"
	rep, err := ReplayFile(strings.NewReader(text), At{}, NewTree(0), nil)
	if err != nil || rep.Skipped != 1 {
		t.Errorf("unknown type: %+v, %v; want it skipped", rep, err)
	}
	for _, empty := range []string{"", "\n\n"} {
		if _, err := ReplayFile(strings.NewReader(empty), At{}, NewTree(0), nil); !errors.Is(err, ErrNotRecording) {
			t.Errorf("%q: %v, want ErrNotRecording", empty, err)
		}
	}
}

func TestReplayAtInstants(t *testing.T) {
	for _, tt := range []struct {
		at      At
		wantPID uint32 // host PID holding 50 in the container; 0: none
	}{
		{At{Relative: true}, 0}, // the start: the snapshot, taken a moment later, holds
		{At{Time: t0 + 2e9}, 150},
		{At{Relative: true, Offset: 4 * time.Second}, 0},
		{At{Time: t0 + 6e9}, 160},
		{At{}, 160}, // the end
	} {
		tree := NewTree(DefaultExitedKept)
		rep, err := ReplayFile(strings.NewReader(incident()), tt.at, tree, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Header == nil || rep.Start != t0 {
			t.Errorf("header %+v start %d", rep.Header, rep.Start)
		}
		p := tree.Namespace(ctrNS).Lookup(50)
		switch {
		case tt.wantPID == 0 && p != nil:
			t.Errorf("at %+v: 50 is %d, want nobody", tt.at, p.PID)
		case tt.wantPID != 0 && (p == nil || p.PID != tt.wantPID):
			t.Errorf("at %+v: 50 is %+v, want host %d", tt.at, p, tt.wantPID)
		}
		if tree.Namespace(ctrNS).Init == nil {
			t.Errorf("at %+v: the container's init is missing", tt.at)
		}
		if tt.wantPID == 0 && tt.at.Offset > 0 {
			h := tree.LastHolderIn(tree.Namespace(ctrNS), 50)
			if h == nil || h.PID != 150 || h.ExitTime != t0+3e9 || h.ExitStatus != 3<<8 {
				t.Errorf("at %+v: last holder of 50 %+v, want 150 exited at t0+3s with 3", tt.at, h)
			}
		}
	}
}

func TestReplayTruncatedAndMalformed(t *testing.T) {
	full := incident()
	upToLastFork := strings.Join(strings.SplitAfter(full, "\n")[:6], "")
	cut := upToLastFork[:len(upToLastFork)-40] // the recorder died mid-line
	rep, err := ReplayFile(strings.NewReader(cut), At{}, NewTree(16), nil)
	if err != nil || !rep.Truncated || rep.Applied != 4 {
		t.Errorf("truncated: %+v, %v; want 4 events and Truncated", rep, err)
	}

	lines := strings.SplitAfter(full, "\n")
	lines[3] = `{"type":"fork","pid":` + "\n"
	_, err = ReplayFile(strings.NewReader(strings.Join(lines, "")), At{}, NewTree(16), nil)
	if err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("malformed line 4: %v", err)
	}

	for name, text := range map[string]string{
		"foreign":        "Hello, this is a README.\n",
		"other JSON":     `{"kind":"Pod","apiVersion":"v1"}` + "\n",
		"other header":   `{"type":"header","format":"pcap","version":1}` + "\n",
		"future version": `{"type":"header","format":"nspidtrace-record","version":2}` + "\n",
		"binary":         "\x7fELF\x02\x01\x01\x00",
	} {
		if _, err := ReplayFile(strings.NewReader(text), At{}, NewTree(16), nil); !errors.Is(err, ErrNotRecording) {
			t.Errorf("%s: %v, want ErrNotRecording", name, err)
		}
	}
}

func TestReplayFeedWithoutHeader(t *testing.T) {
	feed := strings.SplitN(incident(), "\n", 2)[1] // `trace --snapshot` output
	tree := NewTree(16)
	rep, err := ReplayFile(strings.NewReader(feed), At{Relative: true, Offset: 2 * time.Second}, tree, nil)
	if err != nil || rep.Header != nil || rep.Start != t0+1000 || tree.Get(150) == nil {
		t.Errorf("feed: %+v, %v", rep, err)
	}
}

// A snapshot lists a child before its parent; the parent's exit must still
// reparent it.
func TestReplayRelinksTheSnapshot(t *testing.T) {
	text := recording(t0,
		at(ev(events.TypeProc, 1, 0, 1), t0),
		at(ev(events.TypeProc, 20, 30, 20), t0),
		at(ev(events.TypeProc, 30, 1, 30), t0),
		exited(t0+1, 0, 1, 30, 1, 30),
	)
	tree := NewTree(16)
	if _, err := ReplayFile(strings.NewReader(text), At{}, tree, nil); err != nil {
		t.Fatal(err)
	}
	if p := tree.Get(20); p == nil || p.Parent() == nil || p.Parent().PID != 1 {
		t.Errorf("20 after its parent's exit: %+v", p)
	}
}

// FuzzReplay: any file is replayed or refused, never a panic, and the tree
// answers lookups afterwards.
func FuzzReplay(f *testing.F) {
	f.Add([]byte(incident()))
	f.Add([]byte(recording(t0, at(ev(events.TypeProc, 1, 0, 1), t0), exited(t0+1, 0, 0, 1, 0, 1))))
	for name, text := range hostileRecordings() {
		if !strings.HasPrefix(name, "deep") { // too large to be a seed
			f.Add([]byte(text))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tree := NewTree(4)
		ReplayFile(strings.NewReader(string(data)), At{}, tree, nil)
		walked := 0
		tree.Walk(func(p *Proc, _ int) {
			walked++
			n := 0
			for a := p.Parent(); a != nil; a = a.Parent() {
				if n++; n > tree.Len() {
					t.Fatalf("%d's parent chain loops", p.PID)
				}
			}
			var e events.Event
			p.Fill(&e, 0)
			if ns := p.NS(); ns != nil {
				ns.Lookup(p.NSPid(p.Levels() - 1))
				tree.LastHolderIn(ns, 1)
			}
		})
		if walked != tree.Len() {
			t.Fatalf("walked %d of %d processes: a loop hides the rest", walked, tree.Len())
		}
	})
}

func TestParseAt(t *testing.T) {
	good := map[string]At{
		"":                            {},
		"+90s":                        {Relative: true, Offset: 90 * time.Second},
		"+0s":                         {Relative: true},
		"2026-11-23T10:03:00Z":        {Time: time.Date(2026, 11, 23, 10, 3, 0, 0, time.UTC).UnixNano()},
		"2026-11-23T11:03:00.5+01:00": {Time: time.Date(2026, 11, 23, 10, 3, 0, 5e8, time.UTC).UnixNano()},
	}
	for s, want := range good {
		got, err := ParseAt(s)
		if err != nil || got.Time != want.Time || got.Offset != want.Offset || got.Relative != want.Relative || got.Stop != nil {
			t.Errorf("ParseAt(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"yesterday", "+", "+-5s", "10:03", "2026-11-23"} {
		if _, err := ParseAt(s); err == nil {
			t.Errorf("ParseAt(%q) accepted it", s)
		}
	}
}

// TestReplayFilesIsOneTimeline: a rotated series' second file starts with
// a snapshot, which resyncs the tree (a process missing from it exited in
// a gap between files); an instant in either file answers; files of two
// machines are refused.
func TestReplayFilesIsOneTimeline(t *testing.T) {
	first := recording(t0,
		at(ev(events.TypeProc, 1, 0, 1), t0),
		at(ev(events.TypeProc, 100, 1, 100), t0),
		at(ev(events.TypeFork, 150, 100, 150), t0+1e9),
		&events.Event{Type: events.TypeEnd, Time: t0 + 2e9},
	)
	// 150 is gone from the second file's snapshot: it exited unseen.
	second := recording(t0+3e9,
		at(ev(events.TypeProc, 1, 0, 1), t0+3e9),
		at(ev(events.TypeProc, 100, 1, 100), t0+3e9),
		at(ev(events.TypeFork, 170, 100, 170), t0+4e9),
		&events.Event{Type: events.TypeEnd, Time: t0 + 5e9},
	)
	series := func() []Input {
		return []Input{{"a", strings.NewReader(first)}, {"b", strings.NewReader(second)}}
	}
	for _, tt := range []struct {
		at         int64
		live, gone []uint32
	}{
		{t0 + 1.5e9, []uint32{1, 100, 150}, []uint32{170}},
		{t0 + 4.5e9, []uint32{1, 100, 170}, []uint32{150}},
	} {
		tree := NewTree(16)
		rep, err := ReplayFiles(series(), At{Time: tt.at}, tree, nil)
		if err != nil {
			t.Fatalf("at %d: %v", tt.at, err)
		}
		for _, pid := range tt.live {
			if tree.Get(pid) == nil {
				t.Errorf("at +%ds: %d is not live", (tt.at-t0)/1e9, pid)
			}
		}
		for _, pid := range tt.gone {
			if tree.Get(pid) != nil {
				t.Errorf("at +%ds: %d is live", (tt.at-t0)/1e9, pid)
			}
		}
		if rep.Start != t0 {
			t.Errorf("start %d, want the first file's", rep.Start)
		}
	}
	tree := NewTree(16)
	if _, err := ReplayFiles(series(), At{}, tree, nil); err != nil || tree.LastHolder(150) == nil {
		t.Errorf("at the end: %v; 150's exit in the gap should be remembered", err)
	}
	var rerr *RangeError
	if _, err := ReplayFiles(series(), At{Time: t0 + 6e9}, NewTree(0), nil); !errors.As(err, &rerr) || rerr.End != t0+5e9 {
		t.Errorf("after the last file's end: %v, want a range error ending at its end", err)
	}
	other := strings.Replace(second, `"hostname":"h"`, `"hostname":"elsewhere"`, 1)
	_, err := ReplayFiles([]Input{{"a", strings.NewReader(first)}, {"b", strings.NewReader(other)}}, At{}, NewTree(0), nil)
	if err == nil || !strings.Contains(err.Error(), "b: ") || !strings.Contains(err.Error(), "two machines") {
		t.Errorf("files of two machines: %v", err)
	}
}
