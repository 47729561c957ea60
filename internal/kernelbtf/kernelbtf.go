// Package kernelbtf reads what nspidtrace needs from the running kernel's
// BTF without decoding all of it.
//
// cilium/ebpf's btf.LoadKernelSpec indexes every name of the kernel's
// ~130,000 types, and looking up task_struct then decodes every type it
// reaches: 30–40 ms on a 2-vCPU VM, most of a one-shot answer's time. What
// a program load needs is far less: the BTF IDs of a few types by name (the
// iterator's attach target, the enums that name helpers), and, for CO-RE,
// the layout of the few structs the programs read. This package walks the
// raw type section once (a few ms), finds types by name, and builds a small
// btf.Spec holding only those structs, with only the members the programs'
// own BTF declares: relocating against it gives what relocating against the
// whole kernel gives (a test compares every relocation of every program).
package kernelbtf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Path is where the kernel exposes its own BTF.
const Path = "/sys/kernel/btf/vmlinux"

// ErrNoBTF is returned when the kernel exposes no BTF.
var ErrNoBTF = errors.New("the kernel has no BTF (" + Path + " is missing)")

// Kind is a BTF type kind (BTF_KIND_*).
type Kind uint8

// The kinds of include/uapi/linux/btf.h.
const (
	KindUnknown Kind = iota
	KindInt
	KindPtr
	KindArray
	KindStruct
	KindUnion
	KindEnum
	KindFwd
	KindTypedef
	KindVolatile
	KindConst
	KindRestrict
	KindFunc
	KindFuncProto
	KindVar
	KindDatasec
	KindFloat
	KindDeclTag
	KindTypeTag
	KindEnum64
)

// Kernel is the kernel's raw BTF with an index of where each type starts.
// It is not safe for concurrent use. Close releases it, and so does the
// garbage collector once nothing refers to it.
type Kernel struct {
	raw     []byte
	mapped  bool
	unmap   runtime.Cleanup // where raw is mapped: unmaps it
	types   []byte
	strings []byte
	// marks[i] is where type i*markEvery starts in types (id 0 is void,
	// and starts nowhere: marks[0] is where type 1 does). A full index
	// would be 4 bytes for each of ~130,000 types, 127 fresh pages a
	// one-shot answer pays a fault for; a type between marks is found by
	// stepping over at most markEvery-1 others.
	marks []uint32
	count int // types, void included
	// found remembers what Find found: the probe and the load ask for
	// some of the same types.
	found map[string]found
}

// found is one name's types, of the kinds looked for.
type found struct {
	kinds uint32 // a bit per kind
	ids   []TypeID
}

const headerLen = 24 // magic, version, flags, hdr_len, then four u32s

// Open reads the running kernel's BTF: mapped where the kernel allows it
// (6.16+), read otherwise. The types named in prefetch, of their kinds, are
// found in the same pass over all types that indexes them, for Find.
func Open(prefetch map[string][]Kind) (*Kernel, error) {
	f, err := os.Open(Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoBTF
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	k := &Kernel{}
	if raw, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE); err == nil {
		k.raw, k.mapped = raw, true
		k.unmap = runtime.AddCleanup(k, func(raw []byte) { unix.Munmap(raw) }, raw)
	} else {
		// Before 6.16 it cannot be mapped. Its size is exact, and sysfs
		// hands it out a page per read: ReadFull loops.
		k.raw = make([]byte, st.Size())
		if _, err := io.ReadFull(f, k.raw); err != nil {
			return nil, fmt.Errorf("read %s: %w", Path, err)
		}
	}
	if err := k.index(prefetch); err != nil {
		k.Close()
		return nil, fmt.Errorf("%s: %w", Path, err)
	}
	return k, nil
}

// Parse indexes raw BTF held in memory, as Open does, for tests.
func Parse(raw []byte, prefetch map[string][]Kind) (*Kernel, error) {
	k := &Kernel{raw: raw}
	return k, k.index(prefetch)
}

// Close releases the kernel's BTF at once; k must not be used after.
func (k *Kernel) Close() error {
	if !k.mapped {
		return nil
	}
	k.unmap.Stop()
	k.mapped = false
	return unix.Munmap(k.raw)
}

var le = binary.LittleEndian

// index checks the header and every type's length, and marks where types
// start; it finds the types of prefetch on the way (a pass over all types
// costs a one-shot answer 2–4 ms: its ~4 MiB are cold).
func (k *Kernel) index(prefetch map[string][]Kind) error {
	raw := k.raw
	if len(raw) < headerLen || le.Uint16(raw) != 0xeb9f {
		return errors.New("not little-endian BTF")
	}
	hdrLen := le.Uint32(raw[4:])
	typeOff, typeLen := le.Uint32(raw[8:]), le.Uint32(raw[12:])
	strOff, strLen := le.Uint32(raw[16:]), le.Uint32(raw[20:])
	if uint64(hdrLen)+uint64(typeOff)+uint64(typeLen) > uint64(len(raw)) ||
		uint64(hdrLen)+uint64(strOff)+uint64(strLen) > uint64(len(raw)) {
		return errors.New("BTF sections out of bounds")
	}
	k.types = raw[hdrLen+typeOff : hdrLen+typeOff+typeLen]
	k.strings = raw[hdrLen+strOff : hdrLen+strOff+strLen]
	f := k.newFinder(prefetch)
	// A type is 12 bytes at least: this never grows.
	k.marks = make([]uint32, 1, len(k.types)/12/markEvery+2)
	k.count = 1
	for off := 0; off < len(k.types); k.count++ {
		if k.count%markEvery == 0 {
			k.marks = append(k.marks, uint32(off))
		}
		n, err := k.typeLen(off)
		if err != nil {
			return fmt.Errorf("type %d: %w", k.count, err)
		}
		f.see(TypeID(k.count), k.types[off:])
		off += n
	}
	k.remember(f)
	return nil
}

// markEvery is how many types apart index marks are.
const markEvery = 64

// offset is where type id (1 to count-1) starts in types.
func (k *Kernel) offset(id TypeID) int {
	first := int(id) / markEvery * markEvery
	off := int(k.marks[first/markEvery])
	if first == 0 {
		first = 1 // marks[0] is type 1's
	}
	for i := first; i < int(id); i++ {
		n, _ := k.typeLen(off) // every type was checked by index
		off += n
	}
	return off
}

// typeLen is the length of the type at off: its 12-byte head and what
// follows it for its kind.
func (k *Kernel) typeLen(off int) (int, error) {
	if off+12 > len(k.types) {
		return 0, errors.New("truncated")
	}
	info := le.Uint32(k.types[off+4:])
	vlen := int(info & 0xffff)
	n := 12
	switch Kind(info >> 24 & 0x1f) {
	case KindInt, KindVar, KindDeclTag:
		n += 4
	case KindArray:
		n += 12
	case KindStruct, KindUnion, KindDatasec, KindEnum64:
		n += 12 * vlen
	case KindEnum, KindFuncProto:
		n += 8 * vlen
	case KindPtr, KindFwd, KindTypedef, KindVolatile, KindConst, KindRestrict, KindFunc, KindFloat, KindTypeTag:
	default:
		return 0, fmt.Errorf("unknown kind %d", info>>24&0x1f)
	}
	if off+n > len(k.types) {
		return 0, errors.New("truncated")
	}
	return n, nil
}

// TypeID names a kernel type: its index in the kernel's BTF, which is what
// BPF_PROG_LOAD's attach_btf_id takes.
type TypeID uint32

// head is the 12 bytes every type starts with.
type head struct {
	name string
	kind Kind
	vlen int
	// kindFlag: bitfield sizes in members' offsets (structs), a signed
	// enum.
	kindFlag bool
	// sizeOrType: the size of ints, structs, unions, enums; the type of
	// pointers, typedefs, qualifiers, funcs.
	sizeOrType uint32
	// off is where what follows the head starts.
	off int
}

func (k *Kernel) head(id TypeID) (head, error) {
	if id == 0 || int(id) >= k.count {
		return head{}, fmt.Errorf("no type %d", id)
	}
	off := k.offset(id)
	info := le.Uint32(k.types[off+4:])
	return head{
		name:       k.str(le.Uint32(k.types[off:])),
		kind:       Kind(info >> 24 & 0x1f),
		vlen:       int(info & 0xffff),
		kindFlag:   info>>31 == 1,
		sizeOrType: le.Uint32(k.types[off+8:]),
		off:        off + 12,
	}, nil
}

// nameBytes is the name at off in the string section, without a copy.
func (k *Kernel) nameBytes(off uint32) []byte {
	if int(off) >= len(k.strings) {
		return nil
	}
	s := k.strings[off:]
	if end := bytes.IndexByte(s, 0); end >= 0 {
		return s[:end]
	}
	return nil
}

func (k *Kernel) str(off uint32) string { return string(k.nameBytes(off)) }

// Find returns the IDs of the types of the given kinds with the given names,
// in one pass over all types (none when every name was looked for before):
// result[name] lists them in ID order.
func (k *Kernel) Find(names map[string][]Kind) map[string][]TypeID {
	f := k.newFinder(names)
	if len(f.missing) > 0 {
		for id, off := 1, 0; id < k.count; id++ {
			n, _ := k.typeLen(off) // every type was checked by index
			f.see(TypeID(id), k.types[off:])
			off += n
		}
		k.remember(f)
	}
	return f.result
}

// finder is one search by names and kinds, looking at one type at a time.
type finder struct {
	k       *Kernel
	result  map[string][]TypeID
	missing map[string]uint32 // the names not looked for before: a bit per kind
	kinds   uint32            // every kind missing: most types are passed over by kind
}

// newFinder starts a search for names, with what earlier ones found.
func (k *Kernel) newFinder(names map[string][]Kind) *finder {
	f := &finder{k: k, result: make(map[string][]TypeID, len(names)), missing: map[string]uint32{}}
	for name, ks := range names {
		mask := kindMask(ks)
		if found, ok := k.found[name]; ok && found.kinds == mask {
			f.result[name] = found.ids
			continue
		}
		f.missing[name] = mask
		f.kinds |= mask
	}
	return f
}

// see looks at type id, whose head starts t.
func (f *finder) see(id TypeID, t []byte) {
	nameOff := le.Uint32(t)
	kind := Kind(le.Uint32(t[4:]) >> 24 & 0x1f)
	if nameOff == 0 || f.kinds&(1<<kind) == 0 {
		return
	}
	want, ok := f.missing[string(f.k.nameBytes(nameOff))] // no allocation
	if ok && want&(1<<kind) != 0 {
		name := f.k.str(nameOff)
		f.result[name] = append(f.result[name], id)
	}
}

// remember keeps what f looked for, found or not, for later searches.
func (k *Kernel) remember(f *finder) {
	if k.found == nil {
		k.found = map[string]found{}
	}
	for name, mask := range f.missing {
		k.found[name] = found{kinds: mask, ids: f.result[name]}
	}
}

func kindMask(kinds []Kind) uint32 {
	var mask uint32
	for _, kind := range kinds {
		mask |= 1 << kind
	}
	return mask
}

// EnumValues returns the names of the values of the enum id.
func (k *Kernel) EnumValues(id TypeID) ([]string, error) {
	h, err := k.head(id)
	if err != nil {
		return nil, err
	}
	var size int
	switch h.kind {
	case KindEnum:
		size = 8
	case KindEnum64:
		size = 12
	default:
		return nil, fmt.Errorf("type %d is not an enum", id)
	}
	values := make([]string, h.vlen)
	for i := range values {
		values[i] = k.str(le.Uint32(k.types[h.off+i*size:]))
	}
	return values, nil
}
