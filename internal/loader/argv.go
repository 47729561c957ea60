package loader

import (
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
)

// procArgv fills in the argv that a compat task iterator (Linux 5.8 to
// 5.17: no bpf_copy_from_user_task) leaves out, from /proc/PID/cmdline.
// The iterator visits the caller's pid namespace, so /proc numbers each
// process by its PID at the caller's level. A process that exits between
// the iterator and the read keeps an empty argv, as a kernel thread has.
type procArgv struct {
	ownNS uint32 // the caller's pid namespace; 0 if unknown
	buf   [events.ArgsLen]byte
}

func newProcArgv() *procArgv {
	ns, _ := procfs.OwnPidNS(procfs.ProcRoot)
	return &procArgv{ownNS: ns}
}

// fill returns rec with argv in it, when the kernel flagged it unread.
// rec's capacity must be events.ProcRecordMaxSize.
func (a *procArgv) fill(rec []byte) []byte {
	if !events.ArgsUnread(rec) {
		return rec
	}
	var n int
	var truncated bool
	if pid, ok := events.PIDIn(rec, a.ownNS); ok {
		n, truncated, _ = procfs.ReadCmdline(procfs.ProcRoot, int(pid), a.buf[:])
	}
	return events.SetProcArgs(rec, a.buf[:n], truncated)
}
