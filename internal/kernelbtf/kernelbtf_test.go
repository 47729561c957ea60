package kernelbtf_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/nspidtrace/nspidtrace/internal/kernelbtf"
)

var (
	u32  = &btf.Int{Name: "unsigned int", Size: 4}
	u64  = &btf.Int{Name: "unsigned long", Size: 8}
	char = &btf.Int{Name: "char", Size: 1, Encoding: btf.Char}
)

// pretendKernel is raw BTF standing in for a kernel's: a task_struct with
// an anonymous union, a bitfield and a member the programs do not name, an
// mm_struct, a function, an enum and a typedef of an anonymous struct.
func pretendKernel(t *testing.T) []byte {
	t.Helper()
	kuid := &btf.Typedef{Name: "kuid_t", Type: &btf.Struct{Size: 4, Members: []btf.Member{{Name: "val", Type: u32}}}}
	mm := &btf.Struct{Name: "mm_struct", Size: 24, Members: []btf.Member{
		{Name: "mmap_base", Type: u64, Offset: 0},
		{Name: "arg_start", Type: u64, Offset: 64},
		{Name: "arg_end", Type: u64, Offset: 128},
	}}
	files := &btf.Struct{Name: "files_struct", Size: 64}
	task := &btf.Struct{Name: "task_struct", Size: 64, Members: []btf.Member{
		{Name: "state", Type: u32, Offset: 0},
		{Type: &btf.Union{Size: 8, Members: []btf.Member{
			{Type: &btf.Struct{Size: 8, Members: []btf.Member{
				{Name: "pid", Type: u32, Offset: 0},
				{Name: "tgid", Type: u32, Offset: 32},
			}}},
			{Name: "both", Type: u64},
		}}, Offset: 64},
		{Name: "in_execve", Type: u32, Offset: 128 + 3, BitfieldSize: 1},
		{Name: "uid", Type: kuid, Offset: 160},
		{Name: "mm", Type: &btf.Pointer{Target: mm}, Offset: 192},
		{Name: "files", Type: &btf.Pointer{Target: files}, Offset: 256},
		{Name: "comm", Type: &btf.Array{Index: u32, Type: char, Nelems: 16}, Offset: 320},
		{Name: "start", Type: &btf.Pointer{Target: &btf.FuncProto{Return: u32}}, Offset: 448},
	}}
	types := []btf.Type{
		task,
		&btf.Func{Name: "bpf_iter_task", Type: &btf.FuncProto{Return: u32}, Linkage: btf.GlobalFunc},
		&btf.Enum{Name: "bpf_func_id", Size: 4, Values: []btf.EnumValue{{Name: "BPF_FUNC_unspec"}, {Name: "BPF_FUNC_loop", Value: 181}}},
		&btf.Struct{Name: "task_struct", Size: 8, Members: []btf.Member{{Name: "pid", Type: u32}}}, // a second, as modules' BTF may hold
	}
	return marshal(t, types)
}

// marshal is types as raw BTF.
func marshal(t *testing.T, types []btf.Type) []byte {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// programTypes is the programs' own BTF: task_struct as a CO-RE flavour,
// naming pid (inside the kernel's anonymous union there), in_execve, uid,
// mm, files (as a void pointer) and comm; mm_struct naming arg_start and
// arg_end.
func programTypes(t *testing.T) *btf.Spec {
	t.Helper()
	mm := &btf.Struct{Name: "mm_struct", Size: 16, Members: []btf.Member{
		{Name: "arg_start", Type: u64}, {Name: "arg_end", Type: u64, Offset: 64},
	}}
	kuid := &btf.Typedef{Name: "kuid_t", Type: &btf.Struct{Size: 4, Members: []btf.Member{{Name: "val", Type: u32}}}}
	task := &btf.Struct{Name: "task_struct___local", Size: 40, Members: []btf.Member{
		{Name: "pid", Type: u32},
		{Name: "in_execve", Type: u32, Offset: 32, BitfieldSize: 1},
		{Name: "uid", Type: kuid, Offset: 64},
		{Name: "mm", Type: &btf.Pointer{Target: mm}, Offset: 128},
		{Name: "files", Type: &btf.Pointer{Target: &btf.Void{}}, Offset: 192},
		{Name: "comm", Type: &btf.Array{Index: u32, Type: char, Nelems: 16}, Offset: 256},
	}}
	b, err := btf.NewBuilder([]btf.Type{task}, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestFind(t *testing.T) {
	names := map[string][]kernelbtf.Kind{
		"task_struct":   {kernelbtf.KindStruct},
		"bpf_iter_task": {kernelbtf.KindFunc},
		"bpf_func_id":   {kernelbtf.KindEnum, kernelbtf.KindEnum64},
		"mm_struct":     {kernelbtf.KindUnion}, // a struct: not found as a union
		"missing":       {kernelbtf.KindStruct},
	}
	for _, prefetch := range []map[string][]kernelbtf.Kind{nil, names, {"task_struct": {kernelbtf.KindStruct}}} {
		k, err := kernelbtf.Parse(pretendKernel(t), prefetch)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time from what the first found
			found := k.Find(names)
			if n := len(found["task_struct"]); n != 2 {
				t.Errorf("prefetched %v: %d task_structs, want 2", prefetch, n)
			}
			if len(found["bpf_iter_task"]) != 1 || len(found["mm_struct"]) != 0 || len(found["missing"]) != 0 {
				t.Errorf("prefetched %v: found %v", prefetch, found)
			}
			values, err := k.EnumValues(found["bpf_func_id"][0])
			if err != nil || !slices.Equal(values, []string{"BPF_FUNC_unspec", "BPF_FUNC_loop"}) {
				t.Errorf("bpf_func_id: %v, %v", values, err)
			}
			if _, err := k.EnumValues(found["bpf_iter_task"][0]); err == nil {
				t.Error("EnumValues of a function: no error")
			}
		}
	}
}

// Types are found, and read, at every position between the index's marks:
// a few hundred enums of differing lengths, each read back by its ID.
func TestFindEveryPosition(t *testing.T) {
	var types []btf.Type
	names := map[string][]kernelbtf.Kind{}
	for i := range 300 {
		e := &btf.Enum{Name: fmt.Sprintf("e%d", i), Size: 4}
		for v := range i % 7 {
			e.Values = append(e.Values, btf.EnumValue{Name: fmt.Sprintf("e%d_v%d", i, v), Value: uint64(v)})
		}
		types = append(types, e, &btf.Pointer{Target: e}) // lengths differ by kind too
		names[e.Name] = []kernelbtf.Kind{kernelbtf.KindEnum}
	}
	k, err := kernelbtf.Parse(marshal(t, types), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := k.Find(names)
	for i := range 300 {
		name := fmt.Sprintf("e%d", i)
		ids := found[name]
		if len(ids) != 1 {
			t.Fatalf("%s: IDs %v", name, ids)
		}
		values, err := k.EnumValues(ids[0])
		if err != nil || len(values) != i%7 || (len(values) > 0 && values[len(values)-1] != fmt.Sprintf("%s_v%d", name, i%7-1)) {
			t.Fatalf("%s (type %d): values %v, %v", name, ids[0], values, err)
		}
	}
	if _, err := k.EnumValues(kernelbtf.TypeID(601)); err == nil {
		t.Error("type 601 of 600: no error")
	}
}

// TestCORETypesPrunes: the kernel's types keep their layout, hold only the
// members the programs name (found through anonymous members, as CO-RE
// finds them), and types the programs do not declare are empty stubs.
func TestCORETypesPrunes(t *testing.T) {
	k, err := kernelbtf.Parse(pretendKernel(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := k.CORETypes(programTypes(t))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := spec.AnyTypesByName("task_struct")
	if err != nil || len(tasks) != 2 {
		t.Fatalf("task_structs: %v, %v", tasks, err)
	}
	task := tasks[0].(*btf.Struct)
	if task.Size != 64 { // the other task_struct
		task = tasks[1].(*btf.Struct)
	}
	var got []string
	var walk func(prefix string, ms []btf.Member)
	walk = func(prefix string, ms []btf.Member) {
		for _, m := range ms {
			desc := prefix + m.Name
			if m.BitfieldSize != 0 {
				desc += fmt.Sprintf(":%d", m.BitfieldSize)
			}
			desc += fmt.Sprintf("@%d", m.Offset)
			got = append(got, desc)
			switch t := m.Type.(type) {
			case *btf.Struct:
				if m.Name == "" {
					walk(desc+".", t.Members)
				}
			case *btf.Union:
				walk(desc+".", t.Members)
			}
		}
	}
	walk("", task.Members)
	want := []string{"@64", "@64.@0", "@64.@0.pid@0", "in_execve:1@131", "uid@160", "mm@192", "files@256", "comm@320"}
	if !slices.Equal(got, want) {
		t.Errorf("task_struct members:\n got %v\nwant %v", got, want)
	}
	if task.Size != 64 {
		t.Errorf("task_struct size %d, want the kernel's 64", task.Size)
	}
	var mm *btf.Struct
	if err := spec.TypeByName("mm_struct", &mm); err != nil {
		t.Fatal(err)
	}
	if len(mm.Members) != 2 || mm.Members[0].Name != "arg_start" || mm.Members[0].Offset != 64 || mm.Size != 24 {
		t.Errorf("mm_struct: %+v", mm)
	}
	var files *btf.Struct
	if err := spec.TypeByName("files_struct", &files); err != nil {
		t.Fatal(err)
	}
	if len(files.Members) != 0 || files.Size != 64 {
		t.Errorf("files_struct, which the programs do not declare: %+v, want an empty stub of 64 bytes", files)
	}
}

func TestParseRejects(t *testing.T) {
	raw := pretendKernel(t)
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"big-endian": append([]byte{0xeb, 0x9f}, raw[2:]...),
		"truncated":  raw[:len(raw)-40],
	} {
		if _, err := kernelbtf.Parse(bad, nil); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	broken := slices.Clone(raw)
	broken[24+7] = 0x7f // the first type's kind: none such
	if _, err := kernelbtf.Parse(broken, nil); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Errorf("an unknown kind: %v", err)
	}
}

// BenchmarkOpen opens the kernel's BTF as the probe does, finding its
// types in the pass that indexes.
func BenchmarkOpen(b *testing.B) {
	probed := map[string][]kernelbtf.Kind{
		"bpf_map_type": {kernelbtf.KindEnum}, "bpf_func_id": {kernelbtf.KindEnum}, "bpf_iter_task": {kernelbtf.KindFunc},
	}
	for b.Loop() {
		k, err := kernelbtf.Open(probed)
		if err != nil {
			b.Fatal(err)
		}
		k.Close()
	}
}

// BenchmarkDecodeAll decodes every type of the kernel's BTF, as cilium/ebpf
// does for trace's tracepoints: what Open and Find spare the one-shot
// commands (docs/kernel.md).
func BenchmarkDecodeAll(b *testing.B) {
	for b.Loop() {
		spec, err := btf.LoadSpec("/sys/kernel/btf/vmlinux")
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range spec.All() {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkFind(b *testing.B) {
	k, err := kernelbtf.Open(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Close()
	// A name never asked for before makes each Find walk every type, as
	// the first search for a name does: Find remembers what it found.
	i := 0
	for b.Loop() {
		i++
		k.Find(map[string][]kernelbtf.Kind{"bpf_iter_task": {kernelbtf.KindFunc}, fmt.Sprint("absent", i): {kernelbtf.KindStruct}})
	}
}
