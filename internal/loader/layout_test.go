package loader

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// TestRecordLayout checks that internal/events' copy of the record layout,
// from which every offset Decode reads at is derived, is the C structs' as
// bpf2go mirrored them: every field's name, offset and size, in order (a
// small alignchecker). A field added on one side only fails it.
func TestRecordLayout(t *testing.T) {
	pairs := []struct{ c, goType reflect.Type }{
		{reflect.TypeFor[nspidtraceNsptEvent](), reflect.TypeFor[events.RawEvent]()},
		{reflect.TypeFor[nspidtraceNsptExecEvent](), reflect.TypeFor[events.RawExecEvent]()},
		{reflect.TypeFor[nspidtraceNsptProcEvent](), reflect.TypeFor[events.RawProcEvent]()},
		{reflect.TypeFor[nspidtraceNsptRenameEvent](), reflect.TypeFor[events.RawRenameEvent]()},
		{reflect.TypeFor[nspidtraceNsptSignalEvent](), reflect.TypeFor[events.RawSignalEvent]()},
		{reflect.TypeFor[nspidtraceNsptCredEvent](), reflect.TypeFor[events.RawCredEvent]()},
		{reflect.TypeFor[nspidtraceNsptCgroupEvent](), reflect.TypeFor[events.RawCgroupEvent]()},
		{reflect.TypeFor[nspidtraceNsptEvent]().Field(reflect.TypeFor[nspidtraceNsptEvent]().NumField() - 1).Type, reflect.TypeFor[events.RawCred]()},
		{reflect.TypeFor[nspidtraceNsptIds](), reflect.TypeFor[events.RawIDs]()},
	}
	for _, p := range pairs {
		if p.c.Size() != p.goType.Size() {
			t.Errorf("%s: %d bytes in C, %d in Go", p.goType.Name(), p.c.Size(), p.goType.Size())
		}
		cf, gf := layoutFields(p.c), layoutFields(p.goType)
		if len(cf) != len(gf) {
			t.Errorf("%s: %d fields in C, %d in Go", p.goType.Name(), len(cf), len(gf))
			continue
		}
		for i := range cf {
			c, g := cf[i], gf[i]
			if c.Name != g.Name || c.Offset != g.Offset || c.Type.Size() != g.Type.Size() {
				t.Errorf("%s field %d: C has %s at %d (%d bytes), Go %s at %d (%d bytes)",
					p.goType.Name(), i, c.Name, c.Offset, c.Type.Size(), g.Name, g.Offset, g.Type.Size())
			}
		}
	}
}

// layoutFields returns a struct's named fields (not the blank HostLayout marker).
func layoutFields(typ reflect.Type) []reflect.StructField {
	var fields []reflect.StructField
	for f := range typ.Fields() {
		if f.Name != "_" {
			fields = append(fields, f)
		}
	}
	return fields
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
		"handle_rename":        {ebpf.Tracing, ebpf.AttachTraceRawTp, "tp_btf/task_rename"},
		"handle_signal":        {ebpf.Tracing, ebpf.AttachTraceRawTp, "tp_btf/signal_generate"},
		"handle_cred_enter":    {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_enter_setuid"},
		"handle_prctl_enter":   {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_enter_prctl"},
		"handle_cred_exit":     {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/syscalls/sys_exit_setuid"},
		"handle_cgroup_mkdir":  {ebpf.TracePoint, ebpf.AttachNone, "tracepoint/cgroup/cgroup_mkdir"},
	}
	// Each program that fills a process's records has a build for 5.8–5.17.
	for _, name := range slices.Collect(maps.Keys(want)) {
		if strings.HasSuffix(name, "_enter") || name == "handle_cgroup_mkdir" {
			continue
		}
		w := want[name]
		if name == "dump_task" {
			w.section = "iter/task" // not sleepable
		}
		want[name+compatSuffix] = w
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
	maps := map[string]ebpf.MapType{"events": ebpf.RingBuf, "lost": ebpf.PerCPUArray, "ns_at_entry": ebpf.LRUHash,
		"ids_at_entry": ebpf.LRUHash, "proc_scratch": ebpf.PerCPUArray}
	for name, typ := range maps {
		if m := spec.Maps[name]; m == nil || m.Type != typ {
			t.Errorf("map %s: %v, want type %s", name, m, typ)
		}
	}
	for _, v := range []string{nspidtraceVarWithThreads, nspidtraceVarTargetPidns, nspidtraceVarWakeupBytes, nspidtraceVarWithZombies, nspidtraceVarSignalMask} {
		if vs := spec.Variables[v]; vs == nil || !vs.Constant() {
			t.Errorf("knob %s is not a const volatile global", v)
		}
	}
}

// TestChooseBuild: each program name stands for the build the kernel can
// load, and only that build is left to load.
func TestChooseBuild(t *testing.T) {
	for _, compat := range []bool{false, true} {
		spec, err := loadSpec(loadNspidtrace, Features{Loop: !compat, CopyFromUserTask: !compat})
		if err != nil {
			t.Fatal(err)
		}
		for name, p := range spec.Programs {
			if strings.HasSuffix(name, compatSuffix) {
				t.Errorf("compat %v: %s is still there", compat, name)
			}
			// The syscall-entry programs and the cgroup_mkdir one fill no
			// process's record: one build serves all.
			if got := strings.HasSuffix(p.Name, compatSuffix); got != compat && !strings.HasSuffix(name, "_enter") && name != "handle_cgroup_mkdir" {
				t.Errorf("compat %v: %s is %s", compat, name, p.Name)
			}
		}
		if want := map[bool]string{false: "iter.s/task", true: "iter/task"}[compat]; spec.Programs["dump_task"].SectionName != want {
			t.Errorf("compat %v: the task iterator is %s", compat, spec.Programs["dump_task"].SectionName)
		}
	}
}
