package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// T0 is the start of the synthetic recordings tests write.
const T0 = int64(1795419545000000000)

// HostPidNS is the pid namespace of a synthetic recording's host processes.
const HostPidNS = 4026531836

// HostProc is a proc line of a host process at T0, comm "p", in cgroup cg.
func HostProc(pid, ppid uint32, cg *events.Cgroup) *events.Event {
	e := &events.Event{Type: events.TypeProc, Time: T0, PID: pid, TID: pid, PPID: ppid, Levels: 1, Cgroup: cg}
	e.NSPid[0], e.PidNS[0], e.NSPPid[0] = pid, HostPidNS, ppid
	e.SetComm("p")
	return e
}

// WriteRecording writes a recording of evs (after a header of host "h"
// starting at T0), then tail as it is, and returns its path.
func WriteRecording(t testing.TB, name string, evs []*events.Event, tail string) string {
	t.Helper()
	h := events.Header{Format: events.RecordFormat, Version: 1, Hostname: "h", Start: T0}
	b := events.AppendHeader(nil, &h)
	for _, e := range evs {
		b = events.AppendJSON(b, e)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, append(b, tail...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
