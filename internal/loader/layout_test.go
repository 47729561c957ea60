package loader

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// TestRecordLayout checks that the offsets internal/events decodes by are
// those of the C structs, as bpf2go mirrored them: a small alignchecker.
func TestRecordLayout(t *testing.T) {
	var e nspidtraceNsptEvent
	var x nspidtraceNsptExecEvent
	var pr nspidtraceNsptProcEvent
	fields := []struct {
		name string
		got  uintptr
		want int
	}{
		{"ktime_ns", unsafe.Offsetof(e.KtimeNs), events.OffKtime},
		{"type", unsafe.Offsetof(e.Type), events.OffType},
		{"flags", unsafe.Offsetof(e.Flags), events.OffFlags},
		{"pid", unsafe.Offsetof(e.Pid), events.OffPID},
		{"tid", unsafe.Offsetof(e.Tid), events.OffTID},
		{"ppid", unsafe.Offsetof(e.Ppid), events.OffPPID},
		{"uid", unsafe.Offsetof(e.Uid), events.OffUID},
		{"gid", unsafe.Offsetof(e.Gid), events.OffGID},
		{"levels", unsafe.Offsetof(e.Levels), events.OffLevels},
		{"nspid", unsafe.Offsetof(e.Nspid), events.OffNSPid},
		{"pidns", unsafe.Offsetof(e.Pidns), events.OffPidNS},
		{"nsppid", unsafe.Offsetof(e.Nsppid), events.OffNSPPid},
		{"ns", unsafe.Offsetof(e.Ns), events.OffNS},
		{"comm", unsafe.Offsetof(e.Comm), events.OffComm},
		{"exit_status", unsafe.Offsetof(e.ExitStatus), events.OffExitStatus},
		{"ret", unsafe.Offsetof(e.Ret), events.OffRet},
		{"arg", unsafe.Offsetof(e.Arg), events.OffArg},
		{"old_ns", unsafe.Offsetof(e.OldNs), events.OffOldNS},
		{"old_tid", unsafe.Offsetof(e.OldTid), events.OffOldTID},
		{"reaper", unsafe.Offsetof(e.Reaper), events.OffReaper},
		{"start_ns", unsafe.Offsetof(e.StartNs), events.OffStart},
		{"sizeof(nspt_event)", unsafe.Sizeof(e), events.RecordSize},
		{"filename_len", unsafe.Offsetof(x.FilenameLen), events.OffFilenameLen},
		{"args_len", unsafe.Offsetof(x.ArgsLen), events.OffArgsLen},
		{"filename", unsafe.Offsetof(x.Filename), events.OffFilename},
		{"args", unsafe.Offsetof(x.Args), events.OffArgs},
		{"sizeof(nspt_exec_event)", unsafe.Sizeof(x), events.ExecRecordSize},
		{"proc args_len", unsafe.Offsetof(pr.ArgsLen), events.OffProcArgsLen},
		{"proc args", unsafe.Offsetof(pr.Args), events.OffProcArgs},
		{"sizeof(nspt_proc_event)", unsafe.Sizeof(pr), events.ProcRecordMaxSize},
	}
	for _, f := range fields {
		if int(f.got) != f.want {
			t.Errorf("%s: C offset %d, Go decodes at %d", f.name, f.got, f.want)
		}
	}
	if n := len(e.Nspid); n != events.MaxLevels {
		t.Errorf("nspid has %d levels in C, %d in Go", n, events.MaxLevels)
	}
	if n := len(e.Ns); n != int(events.NSKinds) {
		t.Errorf("ns has %d kinds in C, %d in Go", n, events.NSKinds)
	}
	if n := len(x.Args); n != events.ArgsLen {
		t.Errorf("args holds %d bytes in C, %d in Go", n, events.ArgsLen)
	}
}

// TestSpec checks the embedded object without loading it: the programs are
// the kinds this project may use (no kprobes, no fentry) on the right hooks.
func TestSpec(t *testing.T) {
	spec, err := loadNspidtrace()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		typ        ebpf.ProgramType
		attachType ebpf.AttachType
		section    string
	}{
		"handle_fork":          {ebpf.Tracing, ebpf.AttachTraceRawTp, "tp_btf/sched_process_fork"},
		"handle_exec":          {ebpf.Tracing, ebpf.AttachTraceRawTp, "tp_btf/sched_process_exec"},
		"handle_exit":          {ebpf.Tracing, ebpf.AttachTraceRawTp, "tp_btf/sched_process_exit"},
		"handle_setns_enter":   {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_enter_setns"},
		"handle_setns_exit":    {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_exit_setns"},
		"handle_unshare_enter": {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_enter_unshare"},
		"handle_unshare_exit":  {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_exit_unshare"},
		"dump_task":            {ebpf.Tracing, ebpf.AttachTraceIter, "iter.s/task"},
	}
	if len(spec.Programs) != len(want) {
		t.Errorf("object has %d programs, want %d", len(spec.Programs), len(want))
	}
	for name, w := range want {
		p := spec.Programs[name]
		if p == nil {
			t.Errorf("program %s is missing", name)
			continue
		}
		if p.Type != w.typ || p.AttachType != w.attachType || p.SectionName != w.section {
			t.Errorf("%s: type %s attach %s section %q, want %s %s %q", name, p.Type, p.AttachType, p.SectionName, w.typ, w.attachType, w.section)
		}
	}
	maps := map[string]ebpf.MapType{"events": ebpf.RingBuf, "lost": ebpf.PerCPUArray, "ns_at_entry": ebpf.LRUHash, "proc_scratch": ebpf.PerCPUArray}
	for name, typ := range maps {
		if m := spec.Maps[name]; m == nil || m.Type != typ {
			t.Errorf("map %s: %v, want type %s", name, m, typ)
		}
	}
	for _, v := range []string{nspidtraceVarWithThreads, nspidtraceVarTargetPidns, nspidtraceVarWakeupBytes} {
		if vs := spec.Variables[v]; vs == nil || !vs.Constant() {
			t.Errorf("knob %s is not a const volatile global", v)
		}
	}
}
