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

// ReadSnapshot loads only the task iterator, runs it once as Snapshot does
// (with zombies too, marked: see events.Event.Zombie) and unloads it.
// Without args, records carry no argv: copying every process's argv is most
// of the iterator's time, and `tree` as text does not show it.
func ReadSnapshot(args bool, handle func(raw []byte) error) error {
	// The object is parsed while the probe reads the kernel's BTF: a few
	// ms each, on a path that answers in tens, and neither needs the other.
	type parsed struct {
		spec *ebpf.CollectionSpec
		err  error
	}
	object := make(chan parsed, 1)
	go func() {
		spec, err := parseObject(loadNspidtraceIter)
		object <- parsed{spec, err}
	}()
	features, err := checkPrivileges()
	p := <-object
	if err != nil {
		return err
	}
	if p.err != nil {
		return p.err
	}
	spec := p.spec
	chooseBuild(spec, features)
	// A one-shot answer shows processes that exited but are not reaped.
	err = setKnobs(spec, map[string]any{
		nspidtraceIterVarWithZombies:  true,
		nspidtraceIterVarCgroupSubsys: cgroupSubsys(),
		nspidtraceIterVarWithArgs:     args,
	})
	if err != nil {
		return err
	}
	k, err := kernelBTF()
	if err != nil {
		return fmt.Errorf("read the kernel's BTF: %w", err)
	}
	prog, maps, err := loadIterator(spec, nspidtraceIterProgDumpTask, k)
	if err != nil {
		return explainLoadError(err, features)
	}
	defer maps.Close()
	defer prog.Close()
	return iterate(prog, args && features.Compat(), handle)
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
