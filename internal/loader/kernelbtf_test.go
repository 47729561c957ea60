package loader

import (
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/nspidtrace/nspidtrace/internal/kernelbtf"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// TestCORETypesRelocateAsTheWholeKernel: every CO-RE relocation of every
// program, of both objects and both builds, comes out the same against
// kernelbtf's pruned types as against all of the kernel's BTF decoded by
// cilium/ebpf (what Open relocates against).
func TestCORETypesRelocateAsTheWholeKernel(t *testing.T) {
	whole, k := kernelBothWays(t)
	for name, object := range map[string]func() (*ebpf.CollectionSpec, error){
		"nspidtrace": loadNspidtrace, "nspidtraceIter": loadNspidtraceIter,
	} {
		spec, err := object()
		if err != nil {
			t.Fatal(err)
		}
		pruned, err := k.CORETypes(spec.Types)
		if err != nil {
			t.Fatal(err)
		}
		relocations := 0
		for prog, ps := range spec.Programs {
			var relos []*btf.CORERelocation
			for i := range ps.Instructions {
				if r := btf.CORERelocationMetadata(&ps.Instructions[i]); r != nil {
					relos = append(relos, r)
				}
			}
			var b1, b2 btf.Builder
			want, err := btf.CORERelocate(relos, []*btf.Spec{whole}, ps.ByteOrder, b1.Add)
			if err != nil {
				t.Fatalf("%s/%s against the whole kernel: %v", name, prog, err)
			}
			got, err := btf.CORERelocate(relos, []*btf.Spec{pruned}, ps.ByteOrder, b2.Add)
			if err != nil {
				t.Fatalf("%s/%s against kernelbtf: %v", name, prog, err)
			}
			for i := range want {
				if got[i].String() != want[i].String() {
					t.Errorf("%s/%s: %s: kernelbtf gives %s, the whole kernel %s", name, prog, relos[i], got[i].String(), want[i].String())
				}
			}
			relocations += len(relos)
		}
		if relocations < 100 {
			t.Errorf("%s: only %d relocations compared", name, relocations)
		}
		t.Logf("%s: %d programs, %d relocations", name, len(spec.Programs), relocations)
	}
}

// TestIteratorAttachTarget: the BTF ID loadIterator attaches the iterator
// to is the one cilium/ebpf finds for bpf_iter_task.
func TestIteratorAttachTarget(t *testing.T) {
	whole, k := kernelBothWays(t)
	var fn *btf.Func
	if err := whole.TypeByName("bpf_iter_task", &fn); err != nil {
		t.Fatal(err)
	}
	want, err := whole.TypeID(fn)
	if err != nil {
		t.Fatal(err)
	}
	got := k.Find(map[string][]kernelbtf.Kind{"bpf_iter_task": {kernelbtf.KindFunc}})["bpf_iter_task"]
	if len(got) != 1 || btf.TypeID(got[0]) != want {
		t.Errorf("kernelbtf finds bpf_iter_task at %v, cilium/ebpf at %d", got, want)
	}
}

// kernelBothWays reads the kernel's BTF as cilium/ebpf decodes it, all of
// it, and as kernelbtf indexes it.
func kernelBothWays(t *testing.T) (*btf.Spec, *kernelbtf.Kernel) {
	t.Helper()
	whole, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	k, err := kernelbtf.Open(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return whole, k
}

// TestIteratorRefusedIsAnError: a program the verifier refuses comes back
// as an error that quotes the verifier, and the maps created for it are
// closed (a refusal used to close a nil collection and panic).
func TestIteratorRefusedIsAnError(t *testing.T) {
	testenv.Require(t) // loading asks the verifier
	_, k := kernelBothWays(t)
	spec, err := loadSpec(loadNspidtraceIter, Features{Loop: true, CopyFromUserTask: true})
	if err != nil {
		t.Fatal(err)
	}
	// An instruction after the last exit is one no path reaches.
	ps := spec.Programs[nspidtraceIterProgDumpTask]
	ps.Instructions = append(ps.Instructions, asm.Return())
	prog, maps, err := loadIterator(spec, nspidtraceIterProgDumpTask, k)
	if err == nil {
		prog.Close()
		maps.Close()
		t.Fatal("the verifier loaded a program with an unreachable instruction")
	}
	var refused *verifierError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("got %v, want the verifier's refusal of an unreachable instruction", err)
	}
}
