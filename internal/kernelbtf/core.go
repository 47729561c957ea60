package kernelbtf

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// CORETypes returns the kernel types that programs whose own BTF is local
// relocate against (CO-RE): every struct, union, enum and typedef of the
// kernel named as one of local's, where a struct or union holds only the
// members local's struct of that name declares (those are all a program
// can name) and its anonymous members, pruned alike. A struct or union
// local does not declare becomes an empty one of the same name and size:
// a program can only point at it. Offsets, sizes and bitfields are the
// kernel's, so relocations come out as against the whole kernel.
func (k *Kernel) CORETypes(local *btf.Spec) (*btf.Spec, error) {
	c := converter{k: k, members: map[string]map[string]bool{}, done: map[TypeID]btf.Type{}}
	wanted := map[string][]Kind{}
	for typ, err := range local.All() {
		if err != nil {
			return nil, err
		}
		name := essentialName(typ.TypeName())
		if name == "" {
			continue
		}
		switch t := typ.(type) {
		case *btf.Struct:
			wanted[name] = []Kind{KindStruct}
			c.addMembers(name, t.Members)
		case *btf.Union:
			wanted[name] = []Kind{KindUnion}
			c.addMembers(name, t.Members)
		case *btf.Enum:
			wanted[name] = []Kind{KindEnum, KindEnum64}
		case *btf.Typedef:
			wanted[name] = []Kind{KindTypedef}
		}
	}
	var roots []btf.Type
	for _, ids := range k.Find(wanted) {
		for _, id := range ids {
			t, err := c.typ(id)
			if err != nil {
				return nil, err
			}
			roots = append(roots, t)
		}
	}
	b, err := btf.NewBuilder(roots, nil)
	if err != nil {
		return nil, err
	}
	return b.Spec()
}

// essentialName strips a CO-RE flavour: task_struct___old is task_struct.
func essentialName(name string) string {
	if i := strings.LastIndex(name, "___"); i > 0 {
		return name[:i]
	}
	return name
}

// converter turns kernel types into btf.Types, pruned to what the
// programs declare.
type converter struct {
	k *Kernel
	// members[name] are the member names the programs declare for the
	// struct or union name, anonymous members' included.
	members map[string]map[string]bool
	// done holds every type converted but anonymous structs and unions,
	// whose pruning depends on where they are.
	done map[TypeID]btf.Type
}

func (c *converter) addMembers(name string, members []btf.Member) {
	set := c.members[name]
	if set == nil {
		set = map[string]bool{}
		c.members[name] = set
	}
	var add func([]btf.Member)
	add = func(members []btf.Member) {
		for _, m := range members {
			if m.Name != "" {
				set[m.Name] = true
				continue
			}
			switch t := btf.UnderlyingType(m.Type).(type) {
			case *btf.Struct:
				add(t.Members)
			case *btf.Union:
				add(t.Members)
			}
		}
	}
	add(members)
}

// typ converts type id, and what it refers to, into cilium/ebpf's types.
// It is long on purpose: one case per BTF kind, as the kernel's encoding
// lists them, read in one place.
func (c *converter) typ(id TypeID) (btf.Type, error) {
	if id == 0 {
		return &btf.Void{}, nil
	}
	if t, ok := c.done[id]; ok {
		return t, nil
	}
	h, err := c.k.head(id)
	if err != nil {
		return nil, err
	}
	var t btf.Type
	switch h.kind {
	case KindInt:
		enc := le.Uint32(c.k.types[h.off:])
		t = &btf.Int{Name: h.name, Size: h.sizeOrType, Encoding: btf.IntEncoding(enc >> 24 & 0xf)}
	case KindPtr:
		p := &btf.Pointer{}
		c.done[id] = p // a struct may point at itself
		if p.Target, err = c.pointee(TypeID(h.sizeOrType)); err != nil {
			return nil, err
		}
		return p, nil
	case KindArray:
		a := &btf.Array{Nelems: le.Uint32(c.k.types[h.off+8:])}
		if a.Type, err = c.typ(TypeID(le.Uint32(c.k.types[h.off:]))); err != nil {
			return nil, err
		}
		if a.Index, err = c.typ(TypeID(le.Uint32(c.k.types[h.off+4:]))); err != nil {
			return nil, err
		}
		t = a
	case KindStruct, KindUnion:
		if h.name == "" {
			return c.composite(id, h, nil) // not memoized: see done
		}
		keep, declared := c.members[essentialName(h.name)]
		if !declared {
			keep = map[string]bool{} // an opaque stub
		}
		return c.composite(id, h, keep)
	case KindEnum, KindEnum64:
		e := &btf.Enum{Name: h.name, Size: h.sizeOrType, Signed: h.kindFlag, Values: make([]btf.EnumValue, h.vlen)}
		for i := range e.Values {
			if h.kind == KindEnum {
				v := c.k.types[h.off+8*i:]
				e.Values[i] = btf.EnumValue{Name: c.k.str(le.Uint32(v)), Value: uint64(le.Uint32(v[4:]))}
			} else {
				v := c.k.types[h.off+12*i:]
				e.Values[i] = btf.EnumValue{Name: c.k.str(le.Uint32(v)), Value: uint64(le.Uint32(v[4:])) | uint64(le.Uint32(v[8:]))<<32}
			}
		}
		t = e
	case KindFwd:
		kind := btf.FwdStruct
		if h.kindFlag {
			kind = btf.FwdUnion
		}
		t = &btf.Fwd{Name: h.name, Kind: kind}
	case KindTypedef:
		td := &btf.Typedef{Name: h.name}
		c.done[id] = td
		if td.Type, err = c.typ(TypeID(h.sizeOrType)); err != nil {
			return nil, err
		}
		return td, nil
	case KindVolatile, KindConst, KindRestrict, KindTypeTag:
		target, err := c.typ(TypeID(h.sizeOrType))
		if err != nil {
			return nil, err
		}
		switch h.kind {
		case KindVolatile:
			t = &btf.Volatile{Type: target}
		case KindConst:
			t = &btf.Const{Type: target}
		case KindRestrict:
			t = &btf.Restrict{Type: target}
		default:
			t = target // a tag changes no layout
		}
	case KindFloat:
		t = &btf.Float{Name: h.name, Size: h.sizeOrType}
	case KindFunc, KindFuncProto:
		t = &btf.Void{} // only ever pointed at: a program calls no kernel function through a struct
	default:
		return nil, fmt.Errorf("type %d: kind %d in a struct", id, h.kind)
	}
	c.done[id] = t
	return t, nil
}

// pointee is what a pointer points at: functions become void.
func (c *converter) pointee(id TypeID) (btf.Type, error) {
	if id != 0 {
		if h, err := c.k.head(id); err == nil && (h.kind == KindFuncProto || h.kind == KindFunc) {
			return &btf.Void{}, nil
		}
	}
	return c.typ(id)
}

// composite converts a struct or union, with the named members in keep (all
// of them where keep is nil) and its anonymous members pruned alike.
func (c *converter) composite(id TypeID, h head, keep map[string]bool) (btf.Type, error) {
	var members *[]btf.Member
	var t btf.Type
	if h.kind == KindStruct {
		s := &btf.Struct{Name: h.name, Size: h.sizeOrType}
		t, members = s, &s.Members
	} else {
		u := &btf.Union{Name: h.name, Size: h.sizeOrType}
		t, members = u, &u.Members
	}
	if h.name != "" {
		c.done[id] = t
	}
	for i := range h.vlen {
		m := c.k.types[h.off+12*i:]
		name := c.k.nameBytes(le.Uint32(m))
		typeID := TypeID(le.Uint32(m[4:]))
		offset := le.Uint32(m[8:])
		member := btf.Member{Offset: btf.Bits(offset)}
		if h.kindFlag {
			member.Offset, member.BitfieldSize = btf.Bits(offset&0xffffff), btf.Bits(offset>>24)
		}
		var err error
		switch {
		case len(name) == 0:
			member.Type, err = c.anonymous(typeID, keep)
		case keep == nil || keep[string(name)]:
			member.Name = string(name)
			member.Type, err = c.typ(typeID)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		if member.Type != nil {
			*members = append(*members, member)
		}
	}
	return t, nil
}

// anonymous converts an anonymous member's type with its parent's keep;
// nil when nothing in it is kept.
func (c *converter) anonymous(id TypeID, keep map[string]bool) (btf.Type, error) {
	h, err := c.k.head(id)
	if err != nil {
		return nil, err
	}
	if h.kind != KindStruct && h.kind != KindUnion || h.name != "" {
		return c.typ(id)
	}
	t, err := c.composite(id, h, keep)
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case *btf.Struct:
		if len(t.Members) == 0 {
			return nil, nil
		}
	case *btf.Union:
		if len(t.Members) == 0 {
			return nil, nil
		}
	}
	return t, nil
}
