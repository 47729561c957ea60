package query

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

func TestSpecCheck(t *testing.T) {
	for _, tt := range []struct {
		spec Spec
		bad  bool
	}{
		{Spec{}, false},
		{Spec{At: "+1s"}, true},
		{Spec{At: "+1s", From: []string{"f"}}, false},
		{Spec{PidNS: "1", Container: "web"}, true},
	} {
		err := tt.spec.Check()
		var u fault.Usage
		if (err != nil) != tt.bad || (err != nil && !errors.As(err, &u)) {
			t.Errorf("%+v: %v", tt.spec, err)
		}
	}
}

func TestParsePID(t *testing.T) {
	for _, s := range []string{"0", "-1", "x", "4194305", ""} {
		if _, err := ParsePID("PID", s); err == nil || IsPID(s) {
			t.Errorf("%q taken for a PID", s)
		}
	}
	if n, err := ParsePID("PID", "4194304"); err != nil || n != 4194304 || !IsPID("52") {
		t.Errorf("ParsePID(4194304) = %d, %v", n, err)
	}
	var u fault.Usage
	if _, err := ResolvePidNS("pid:[x]"); !errors.As(err, &u) {
		t.Errorf("a bad --pidns: %v, want a usage error", err)
	}
}

// TestOpenRecording: a recording's view, chosen by --pidns in each of its
// forms, at --at, and the errors for what it does not hold.
func TestOpenRecording(t *testing.T) {
	const ctrNS = 4026532300
	inCtr := testenv.HostProc(101, 1, nil)
	inCtr.Levels, inCtr.NSPid[1], inCtr.PidNS[1] = 2, 1, ctrNS
	late := testenv.HostProc(102, 101, nil)
	late.Type, late.Time, late.Levels, late.NSPid[1], late.PidNS[1], late.NSPPid[1] = events.TypeFork, testenv.T0+5e9, 2, 2, ctrNS, 1
	path := testenv.WriteRecording(t, "r.ndjson", []*events.Event{testenv.HostProc(1, 0, nil), inCtr, late}, "")
	log := zerolog.Nop()

	for _, pidns := range []string{"101", fmt.Sprint(ctrNS), fmt.Sprintf("pid:[%d]", ctrNS)} {
		v, err := Open(Spec{From: []string{path}, PidNS: pidns}, log)
		if err != nil {
			t.Fatalf("--pidns %s: %v", pidns, err)
		}
		if v.NS.Inode != ctrNS || !v.Narrowed || v.Tree.Len() != 3 {
			t.Errorf("--pidns %s: view pid:[%d], %d processes", pidns, v.NS.Inode, v.Tree.Len())
		}
		p, err := v.Find(2)
		if err != nil || p.PID != 102 {
			t.Errorf("--pidns %s: PID 2 is %v, %v; want host PID 102", pidns, p, err)
		}
	}
	v, err := Open(Spec{From: []string{path}, At: "+1s"}, log)
	if err != nil || v.Tree.Get(102) != nil || v.Tree.Get(101) == nil {
		t.Errorf("--at +1s: %v; want 101 alone in the container", err)
	}
	var nf fault.NotFound
	if _, err := Open(Spec{From: []string{path}, At: "+1h"}, log); !errors.As(err, &nf) {
		t.Errorf("--at past the end: %v, want not found", err)
	}
	if _, err := Open(Spec{From: []string{path}, PidNS: "4026532999"}, log); !errors.As(err, &nf) {
		t.Errorf("--pidns of no process: %v, want not found", err)
	}
	if _, err := Open(Spec{From: []string{path}, Container: "web"}, log); !errors.As(err, &nf) {
		t.Errorf("--container of none: %v, want not found", err)
	}
}
