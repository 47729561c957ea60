package loader

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/kernelbtf"
)

// loadIterator loads the iterator program name of spec, and the maps it
// uses, as cilium/ebpf's collection loader would, but for two lookups in
// the kernel's BTF: the layouts CO-RE relocates against, and the BTF ID of
// the iterator's attach target. cilium/ebpf finds both by decoding all of
// the kernel's BTF (30–40 ms, most of a one-shot answer); kernelbtf finds
// them in a few. The maps are cilium/ebpf's own (their contents, .rodata's
// frozen knobs included), and so is the encoding of the instructions;
// the load itself is one BPF_PROG_LOAD. Closing the program, then maps,
// releases it all.
func loadIterator(spec *ebpf.CollectionSpec, name string, k *kernelbtf.Kernel) (_ *ebpf.Program, maps *ebpf.Collection, err error) {
	ps := spec.Programs[name]
	if ps == nil {
		return nil, nil, fmt.Errorf("no program %s", name)
	}
	ps = ps.Copy()
	// The maps are created while CO-RE reads the kernel's types.
	type created struct {
		maps *ebpf.Collection
		err  error
	}
	mapsDone := make(chan created, 1)
	used := mapsUsedBy(ps) // read before relocate rewrites instructions
	go func() {
		maps, err := loadMaps(spec, used)
		mapsDone <- created{maps, err}
	}()
	local, relocateErr := relocate(ps, spec.Types, k)
	c := <-mapsDone
	if c.err != nil {
		return nil, nil, c.err
	}
	// The error returns below set maps to nil: close what was created.
	defer func() {
		if err != nil {
			c.maps.Close()
		}
	}()
	maps = c.maps
	if relocateErr != nil {
		return nil, nil, relocateErr
	}
	for i := range ps.Instructions {
		ins := &ps.Instructions[i]
		if ins.IsLoadFromMap() && ins.Reference() != "" {
			if err := ins.AssociateMap(maps.Maps[ins.Reference()]); err != nil {
				return nil, nil, fmt.Errorf("%s: map %s: %w", name, ins.Reference(), err)
			}
		}
	}
	targetName := "bpf_iter_" + ps.AttachTo
	ids := k.Find(map[string][]kernelbtf.Kind{targetName: {kernelbtf.KindFunc}})[targetName]
	if len(ids) != 1 {
		return nil, nil, fmt.Errorf("%s: the kernel has %d functions %s, want 1", name, len(ids), targetName)
	}
	prog, err := loadProgram(ps, local, uint32(ids[0]))
	if err != nil {
		return nil, nil, err
	}
	return prog, maps, nil
}

// loadProgram loads ps, relocated, with its BTF local, attached to the
// kernel's type attachBTFID.
func loadProgram(ps *ebpf.ProgramSpec, local *btf.Builder, attachBTFID uint32) (*ebpf.Program, error) {
	name := ps.Name
	// Func info is not optional: bpf_loop's callbacks must be known static.
	funcInfo, lineInfo, err := btf.MarshalExtInfos(ps.Instructions, local)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	handle, err := btf.NewHandle(local)
	if err != nil {
		return nil, fmt.Errorf("%s: load its BTF: %w", name, err)
	}
	defer handle.Close() // the program holds its own reference

	var insns bytes.Buffer
	if err := ps.Instructions.Marshal(&insns, ps.ByteOrder); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	license := []byte(ps.License + "\x00")
	code := insns.Bytes()
	// The attributes hold these as plain addresses: keep them alive.
	defer runtime.KeepAlive(code)
	defer runtime.KeepAlive(license)
	defer runtime.KeepAlive(funcInfo)
	defer runtime.KeepAlive(lineInfo)
	attr := progLoadAttr{
		progType:        uint32(ps.Type),
		insnCnt:         uint32(len(code) / 8),
		insns:           pointer(code),
		license:         pointer(license),
		progFlags:       ps.Flags,
		expectedAttach:  uint32(ps.AttachType),
		progBTFFd:       uint32(handle.FD()),
		funcInfoRecSize: btf.FuncInfoSize,
		funcInfo:        pointer(funcInfo),
		funcInfoCnt:     uint32(len(funcInfo)) / btf.FuncInfoSize,
		lineInfoRecSize: btf.LineInfoSize,
		lineInfo:        pointer(lineInfo),
		lineInfoCnt:     uint32(len(lineInfo)) / btf.LineInfoSize,
		attachBTFID:     attachBTFID,
	}
	// A name of our own object: only its length needs bounding.
	copy(attr.progName[:unix.BPF_OBJ_NAME_LEN-1], ps.Name)
	fd, err := progLoad(&attr)
	if err != nil {
		// Again with the verifier's log, to say why.
		log := make([]byte, 1<<20)
		attr.logLevel, attr.logSize, attr.logBuf = 1, uint32(len(log)), pointer(log)
		if _, again := progLoad(&attr); again != nil {
			err = &verifierError{err: err, log: string(bytes.TrimRight(log, "\x00"))}
		}
		runtime.KeepAlive(log)
		return nil, fmt.Errorf("load program %s: %w", name, err)
	}
	prog, err := ebpf.NewProgramFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return prog, nil
}

// relocate applies ps's CO-RE relocations against the kernel's types that
// local, the programs' own BTF, declares. It returns the builder of ps's own
// BTF, which holds the local type IDs CO-RE may have taken.
func relocate(ps *ebpf.ProgramSpec, local *btf.Spec, k *kernelbtf.Kernel) (*btf.Builder, error) {
	target, err := k.CORETypes(local)
	if err != nil {
		return nil, fmt.Errorf("read the kernel's BTF: %w", err)
	}
	var b btf.Builder
	var relos []*btf.CORERelocation
	var at []int
	for i := range ps.Instructions {
		if r := btf.CORERelocationMetadata(&ps.Instructions[i]); r != nil {
			relos, at = append(relos, r), append(at, i)
		}
	}
	fixups, err := btf.CORERelocate(relos, []*btf.Spec{target}, ps.ByteOrder, b.Add)
	if err != nil {
		return nil, fmt.Errorf("%s: CO-RE: %w", ps.Name, err)
	}
	for i, fixup := range fixups {
		if err := fixup.Apply(&ps.Instructions[at[i]]); err != nil {
			return nil, fmt.Errorf("%s: CO-RE: %w", ps.Name, err)
		}
	}
	return &b, nil
}

// mapsUsedBy names the maps ps loads from.
func mapsUsedBy(ps *ebpf.ProgramSpec) []string {
	var names []string
	for _, ins := range ps.Instructions {
		if ref := ins.Reference(); ins.IsLoadFromMap() && ref != "" && !slices.Contains(names, ref) {
			names = append(names, ref)
		}
	}
	return names
}

// loadMaps creates the maps of spec named, with their contents and the
// variables they hold, as cilium/ebpf's collection loader does.
func loadMaps(spec *ebpf.CollectionSpec, names []string) (*ebpf.Collection, error) {
	used := &ebpf.CollectionSpec{
		Maps:      map[string]*ebpf.MapSpec{},
		Variables: map[string]*ebpf.VariableSpec{},
		Types:     spec.Types,
		ByteOrder: spec.ByteOrder,
	}
	for _, name := range names {
		m := spec.Maps[name]
		if m == nil {
			return nil, fmt.Errorf("no map %s", name)
		}
		// Without BTF for key and value: only tools that print a map's
		// contents use it, and loading it costs a one-shot answer more
		// than a millisecond.
		m = m.Copy()
		m.Key, m.Value = nil, nil
		used.Maps[name] = m
	}
	for name, v := range spec.Variables {
		if used.Maps[v.SectionName] != nil {
			used.Variables[name] = v
		}
	}
	coll, err := ebpf.NewCollection(used)
	if err != nil {
		return nil, fmt.Errorf("create the maps %s: %w", strings.Join(names, ", "), err)
	}
	return coll, nil
}

// verifierError is a load the verifier refused, with its log.
type verifierError struct {
	err error
	log string
}

// Error names the refusal and the log's last lines: the reason is at the
// end.
func (e *verifierError) Error() string {
	lines := strings.Split(strings.TrimSpace(e.log), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return fmt.Sprintf("%v: verifier: %s", e.err, strings.Join(lines, "; "))
}

func (e *verifierError) Unwrap() error { return e.err }

// progLoadAttr is union bpf_attr as BPF_PROG_LOAD reads it
// (include/uapi/linux/bpf.h), up to attach_btf_obj_fd, which 5.8 knows.
type progLoadAttr struct {
	progType        uint32
	insnCnt         uint32
	insns           uint64
	license         uint64
	logLevel        uint32
	logSize         uint32
	logBuf          uint64
	kernVersion     uint32
	progFlags       uint32
	progName        [unix.BPF_OBJ_NAME_LEN]byte
	progIfindex     uint32
	expectedAttach  uint32
	progBTFFd       uint32
	funcInfoRecSize uint32
	funcInfo        uint64
	funcInfoCnt     uint32
	lineInfoRecSize uint32
	lineInfo        uint64
	lineInfoCnt     uint32
	attachBTFID     uint32
	attachBTFObjFd  uint32
	_               uint32 // core_relo_cnt: 0, so that older kernels accept the size
}

func pointer(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&b[0])))
}

// progLoad is BPF_PROG_LOAD, retried while a signal interrupts it (the
// verifier returns EAGAIN then).
func progLoad(attr *progLoadAttr) (int, error) {
	for {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
		runtime.KeepAlive(attr)
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EAGAIN, unix.EINTR:
			continue
		}
		return -1, errno
	}
}
