package view

import (
	"errors"
	"strings"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

const hostNS, ctrNS = 4026531836, 4026532156

var (
	web  = &events.Container{ID: strings.Repeat("a", 64), Name: "web", Runtime: "docker"}
	side = &events.Container{ID: strings.Repeat("b", 64), Name: "side", Runtime: "docker"}
)

// proc is a proc line of pid, its PIDs at each level (host, then the
// container's namespace), in container c's cgroup (nil: the host's).
func proc(pid, ppid uint32, comm string, c *events.Container, nspid ...uint32) *events.Event {
	e := &events.Event{Type: events.TypeProc, PID: pid, TID: pid, PPID: ppid, Levels: len(nspid), StartBoot: uint64(pid)}
	copy(e.NSPid[:], nspid)
	copy(e.PidNS[:], []uint32{hostNS, ctrNS}[:len(nspid)])
	e.SetComm(comm)
	if c != nil {
		e.Cgroup = events.NewCgroup(0, "/docker/"+c.ID, c)
	} else {
		e.Cgroup = events.NewCgroup(0, "/", nil)
	}
	return e
}

// sample: the host's init and a shim; web's init (1 in its namespace), a
// sidecar sharing web's namespace from its own cgroup, and a shell that
// docker exec'd into web.
func sample() *pidmap.Tree {
	t := pidmap.NewTree(16)
	for _, e := range []*events.Event{
		proc(1, 0, "init", nil, 1),
		proc(10, 1, "containerd-shim", nil, 10),
		proc(100, 10, "nginx", web, 100, 1),
		proc(200, 10, "sleep", side, 200, 7),
		proc(300, 10, "sh", web, 300, 9),
	} {
		t.Apply(e)
	}
	t.Relink()
	return t
}

func TestSelectContainer(t *testing.T) {
	v := &View{Tree: sample(), FromFile: true}
	if err := v.Select("web", "", 0); err != nil {
		t.Fatal(err)
	}
	if v.NS == nil || v.NS.Inode != ctrNS || v.Level() != 1 || !v.OwnsView() {
		t.Fatalf("web's view: %+v", v.NS)
	}
	var shown []uint32
	v.Tree.Walk(func(p *pidmap.Proc, _ int) {
		if v.Selected(p) {
			shown = append(shown, p.PID)
		}
	})
	if len(shown) != 3 { // nginx, the sidecar's sleep (marked), sh
		t.Errorf("shown %v, want 100, 200 and 300", shown)
	}
	sleep, err := v.Find(7)
	if err != nil || sleep.PID != 200 || v.OutsideContainer(sleep) != "in web's pid namespace, container side" {
		t.Errorf("Find(7) = %v, %v; outside: %q", sleep, err, v.OutsideContainer(sleep))
	}
	sh, _ := v.Find(9)
	if notes := string(v.AppendNotes(nil, sh)); notes != " [entered from containerd-shim(10)]" {
		t.Errorf("sh's notes %q", notes)
	}
}

func TestFindErrors(t *testing.T) {
	tree := sample()
	tree.Apply(&events.Event{Type: events.TypeExit, PID: 300, TID: 300, StartBoot: 300, Time: 5e9, Reaper: 100})
	v := &View{Tree: tree, FromFile: true}
	if err := v.Select("", "", ctrNS); err != nil {
		t.Fatal(err)
	}
	_, err := v.Find(9)
	var nf fault.NotFound
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "it was sh (host PID 300), which exited") {
		t.Errorf("Find of an exited process: %v", err)
	}
	for _, arg := range []string{"nosuch", ""} {
		if err := (&View{Tree: tree, FromFile: true}).Select(arg, "", 0); arg != "" && !errors.As(err, &nf) {
			t.Errorf("Select(%q): %v, want not found", arg, err)
		}
	}
	if err := (&View{Tree: tree, FromFile: true}).Select("", "", 4026599999); !errors.As(err, &nf) {
		t.Errorf("an unknown pid namespace: %v, want not found", err)
	}
	twice := sample()
	twice.Apply(proc(400, 10, "web", &events.Container{ID: strings.Repeat("c", 64), Name: "web", Pod: &events.Pod{Namespace: "dev", Name: "p"}}, 400))
	var usage fault.Usage
	if err := (&View{Tree: twice, FromFile: true}).Select("web", "", 0); !errors.As(err, &usage) {
		t.Errorf("a name two containers have: %v, want a usage error", err)
	}
}

// TestResolveNetNSInARecording: with a recording's tree, --netns takes
// net:[INODE] of a namespace a process holds, or a container; a path names
// a live namespace, not the recording's.
func TestResolveNetNSInARecording(t *testing.T) {
	tree := sample()
	for _, p := range []uint32{100, 300} {
		e := proc(p, 10, "x", web, p, 1)
		e.NS[events.NSNet] = 4026532160
		tree.Apply(e)
	}
	if ino, err := ResolveNetNS("net:[4026532160]", tree, true); err != nil || ino != 4026532160 {
		t.Errorf("net:[INODE]: %d, %v", ino, err)
	}
	if ino, err := ResolveNetNS("web", tree, true); err != nil || ino != 4026532160 {
		t.Errorf("a container: %d, %v", ino, err)
	}
	var nf fault.NotFound
	if _, err := ResolveNetNS("net:[4026599999]", tree, true); !errors.As(err, &nf) {
		t.Errorf("a namespace nothing holds: %v, want not found", err)
	}
	var usage fault.Usage
	if _, err := ResolveNetNS("/run/netns/blue", tree, true); !errors.As(err, &usage) {
		t.Errorf("a path with a recording: %v, want a usage error", err)
	}
}
