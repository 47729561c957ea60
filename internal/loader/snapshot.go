package loader

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// Snapshot runs the task iterator: handle receives one proc record (decode
// with events.Decoder) for every live process the caller's pid namespace
// can see, each with its PIDs at every level, host included.
func (t *Tracer) Snapshot(handle func(raw []byte) error) error {
	return iterate(t.objs.DumpTask, t.features.Compat(), handle)
}

// iterObjects is the task iterator alone, for one-shot questions that need
// no tracing.
type iterObjects struct {
	DumpTask    *ebpf.Program `ebpf:"dump_task"`
	ProcScratch *ebpf.Map     `ebpf:"proc_scratch"`
}

// ReadSnapshot loads only the task iterator, runs it once as Snapshot does
// (with zombies too, marked: see events.Event.Zombie) and unloads it.
// Without args, records carry no argv: copying every process's argv is most
// of the iterator's time, and `tree` as text does not show it.
func ReadSnapshot(args bool, handle func(raw []byte) error) error {
	features, err := checkPrivileges()
	if err != nil {
		return err
	}
	spec, err := loadSpec(features)
	if err != nil {
		return err
	}
	// A one-shot answer shows processes that exited but are not reaped.
	if err := spec.Variables[nspidtraceVarWithZombies].Set(true); err != nil {
		return fmt.Errorf("set %s: %w", nspidtraceVarWithZombies, err)
	}
	if err := spec.Variables[nspidtraceVarCgroupSubsys].Set(cgroupSubsys()); err != nil {
		return fmt.Errorf("set %s: %w", nspidtraceVarCgroupSubsys, err)
	}
	if err := spec.Variables[nspidtraceVarWithArgs].Set(args); err != nil {
		return fmt.Errorf("set %s: %w", nspidtraceVarWithArgs, err)
	}
	var objs iterObjects
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Cache: kernelTypes}); err != nil {
		return explainLoadError(err, features)
	}
	defer objs.ProcScratch.Close()
	defer objs.DumpTask.Close()
	return iterate(objs.DumpTask, args && features.Compat(), handle)
}

// iterate runs the task iterator prog and hands each record to handle.
// With argvFromProc, for the compat build, whose iterator cannot read argv
// (Features.CopyFromUserTask), it fills argv in from /proc first.
func iterate(prog *ebpf.Program, argvFromProc bool, handle func(raw []byte) error) error {
	var argv *procArgv
	if argvFromProc {
		argv = newProcArgv()
	}
	it, err := link.AttachIter(link.IterOptions{Program: prog})
	if err != nil {
		return fmt.Errorf("attach the task iterator: %w", err)
	}
	defer it.Close()
	rd, err := it.Open()
	if err != nil {
		return fmt.Errorf("run the task iterator: %w", err)
	}
	defer rd.Close()
	// Records are as long as their argv: read the head, then the rest.
	br := bufio.NewReaderSize(rd, 256<<10)
	buf := make([]byte, events.ProcRecordMaxSize)
	for {
		_, err := io.ReadFull(br, buf[:events.OffProcArgs])
		if errors.Is(err, io.EOF) {
			return nil
		}
		n := events.RecordLen(buf)
		if err == nil {
			_, err = io.ReadFull(br, buf[events.OffProcArgs:n])
		}
		if err != nil {
			return fmt.Errorf("read the task iterator: %w", err)
		}
		rec := buf[:n]
		if argv != nil {
			rec = argv.fill(rec)
		}
		if err := handle(rec); err != nil {
			return err
		}
	}
}
