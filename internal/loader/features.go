package loader

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/kernelbtf"
)

// MinKernel is the oldest Linux release nspidtrace runs on: BPF ring
// buffers, task iterators and bpf_ktime_get_boot_ns came in 5.8. The
// README and docs/kernel.md name the same version.
const MinKernel = "5.8"

// kernelIndex is the kernel's BTF, indexed once (kernelbtf: a few ms, where
// decoding all of it takes 30–40) for the feature probe and the task
// iterator's load. Open drops it once the programs are loaded: a trace runs
// for hours, and the index keeps the BTF's pages resident. Dropped, not
// closed: the collector unmaps it when no load still uses it.
var kernelIndex struct {
	sync.Mutex
	k *kernelbtf.Kernel
}

// kernelBTF returns the kernel's BTF index, reading it on first use.
func kernelBTF() (*kernelbtf.Kernel, error) {
	kernelIndex.Lock()
	defer kernelIndex.Unlock()
	if kernelIndex.k == nil {
		k, err := kernelbtf.Open(probedTypes)
		if err != nil {
			return nil, err
		}
		kernelIndex.k = k
	}
	return kernelIndex.k, nil
}

// releaseKernelBTF drops the index; the next kernelBTF reads it again.
func releaseKernelBTF() {
	kernelIndex.Lock()
	defer kernelIndex.Unlock()
	kernelIndex.k = nil
}

// Features are what the running kernel's BPF offers, as far as nspidtrace
// chooses by it. They are read from the kernel's BTF, which names every
// helper the kernel has (enum bpf_func_id), every tracepoint a tp_btf
// program can attach to and every BPF iterator: no program is loaded to
// find out, and a kernel that backports a feature is credited with it.
type Features struct {
	// Release is the kernel's uname release, for messages.
	Release string
	// Loop: bpf_loop (5.17), which walks pid levels in a callback the
	// verifier checks once.
	Loop bool
	// CopyFromUserTask: bpf_copy_from_user_task and sleepable task
	// iterators (5.18), with which the iterator reads every process's argv.
	CopyFromUserTask bool
}

// Compat reports whether the kernel needs the programs built for 5.8 to
// 5.17 (the "_compat" programs of bpf/).
func (f Features) Compat() bool { return !f.Loop || !f.CopyFromUserTask }

// Missing names, for a log line, the optional features the kernel lacks.
func (f Features) Missing() string {
	var missing []string
	if !f.Loop {
		missing = append(missing, "bpf_loop (5.17)")
	}
	if !f.CopyFromUserTask {
		missing = append(missing, "sleepable task iterators with bpf_copy_from_user_task (5.18)")
	}
	return strings.Join(missing, ", ")
}

// requirement is one kernel feature nspidtrace cannot do without.
type requirement struct {
	what, since string
	has         func(kernelFacts) bool
}

var requirements = []requirement{
	{"BPF ring buffers", "5.8", enumHas("bpf_map_type", "BPF_MAP_TYPE_RINGBUF")},
	{"BPF task iterators", "5.8", typeExists("bpf_iter_task")},
	{"bpf_ktime_get_boot_ns", "5.8", enumHas("bpf_func_id", "BPF_FUNC_ktime_get_boot_ns")},
	{"BTF tracepoints (tp_btf) on sched_process_fork", "5.5", typeExists("btf_trace_sched_process_fork")},
}

// probedTypes are the kernel types the probe looks at, by name.
var probedTypes = map[string][]kernelbtf.Kind{
	"bpf_map_type":                 {kernelbtf.KindEnum},
	"bpf_func_id":                  {kernelbtf.KindEnum},
	"bpf_iter_task":                {kernelbtf.KindFunc},
	"btf_trace_sched_process_fork": {kernelbtf.KindTypedef},
}

// kernelFacts are the probed types, found in one pass over the kernel's.
type kernelFacts struct {
	k     *kernelbtf.Kernel
	found map[string][]kernelbtf.TypeID
}

// ProbeFeatures reads the kernel's features once per process. It fails,
// naming the first missing feature and the release that brought it, on a
// kernel nspidtrace cannot run on.
var ProbeFeatures = sync.OnceValues(func() (Features, error) {
	return probeFeatures(kernelBTF)
})

// probe is ProbeFeatures, but for tests that make this kernel look older.
var probe = ProbeFeatures

func probeFeatures(kernel func() (*kernelbtf.Kernel, error)) (Features, error) {
	f := Features{Release: release()}
	k, err := kernel()
	if err != nil {
		if errors.Is(err, kernelbtf.ErrNoBTF) {
			return f, errNoBTF
		}
		return f, fmt.Errorf("read the kernel's BTF: %w", err)
	}
	facts := kernelFacts{k, k.Find(probedTypes)}
	for _, r := range requirements {
		if !r.has(facts) {
			return f, fmt.Errorf("this kernel (%s) has no %s, which came in Linux %s: nspidtrace needs Linux %s or newer", f.Release, r.what, r.since, MinKernel)
		}
	}
	f.Loop = enumHas("bpf_func_id", "BPF_FUNC_loop")(facts)
	f.CopyFromUserTask = enumHas("bpf_func_id", "BPF_FUNC_copy_from_user_task")(facts)
	return f, nil
}

var errNoBTF = errors.New("the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): nspidtrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")

// enumHas reports whether the kernel's enum holds the value: the kernel
// knows a helper when its BPF_FUNC_ value is in enum bpf_func_id.
func enumHas(enum, value string) func(kernelFacts) bool {
	return func(f kernelFacts) bool {
		for _, id := range f.found[enum] {
			values, err := f.k.EnumValues(id)
			if err == nil && slices.Contains(values, value) {
				return true
			}
		}
		return false
	}
}

// typeExists reports whether the kernel has the probed type name.
func typeExists(name string) func(kernelFacts) bool {
	return func(f kernelFacts) bool { return len(f.found[name]) > 0 }
}

func release() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// compatSuffix names the 5.8–5.17 build of a program.
const compatSuffix = "_compat"

// chooseBuild makes each program name of spec stand for the build the
// kernel loads: the "_compat" one where f.Compat(). The objects structs
// name only the plain names, so only one build is ever loaded.
func chooseBuild(spec *ebpf.CollectionSpec, f Features) {
	for _, name := range slices.Collect(maps.Keys(spec.Programs)) {
		base, ok := strings.CutSuffix(name, compatSuffix)
		if !ok {
			continue
		}
		if f.Compat() {
			spec.Programs[base] = spec.Programs[name]
		}
		delete(spec.Programs, name)
	}
}
