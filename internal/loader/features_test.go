package loader

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/kernelbtf"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// fakeKernel builds the BTF of a pretend kernel that has the helpers and
// map types named, the task iterator, and the fork tracepoint, less what
// drop names.
func fakeKernel(t *testing.T, drop ...string) func() (*kernelbtf.Kernel, error) {
	t.Helper()
	enum := func(name string, values ...string) *btf.Enum {
		e := &btf.Enum{Name: name, Size: 4}
		for i, v := range values {
			if !slices.Contains(drop, v) {
				e.Values = append(e.Values, btf.EnumValue{Name: v, Value: uint64(i + 1)})
			}
		}
		return e
	}
	types := []btf.Type{
		enum("bpf_map_type", "BPF_MAP_TYPE_HASH", "BPF_MAP_TYPE_RINGBUF"),
		enum("bpf_func_id", "BPF_FUNC_map_lookup_elem", "BPF_FUNC_ktime_get_boot_ns", "BPF_FUNC_loop", "BPF_FUNC_copy_from_user_task"),
	}
	if !slices.Contains(drop, "bpf_iter_task") {
		types = append(types, &btf.Func{Name: "bpf_iter_task", Type: &btf.FuncProto{Return: &btf.Int{Name: "int", Size: 4}}, Linkage: btf.GlobalFunc})
	}
	if !slices.Contains(drop, "btf_trace_sched_process_fork") {
		types = append(types, &btf.Typedef{Name: "btf_trace_sched_process_fork", Type: &btf.Pointer{Target: &btf.FuncProto{Return: &btf.Void{}}}})
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func() (*kernelbtf.Kernel, error) { return kernelbtf.Parse(raw, nil) }
}

// TestProbeFeatures: the choice of build follows the kernel's helpers, and
// a kernel below the floor gets one line naming what it lacks and since when.
func TestProbeFeatures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		drop   []string
		compat bool
		err    string
	}{
		{name: "5.18 and newer", compat: false},
		{name: "5.17: bpf_loop, no bpf_copy_from_user_task", drop: []string{"BPF_FUNC_copy_from_user_task"}, compat: true},
		{name: "5.8 to 5.16", drop: []string{"BPF_FUNC_loop", "BPF_FUNC_copy_from_user_task"}, compat: true},
		{name: "5.7: no ring buffer", drop: []string{"BPF_MAP_TYPE_RINGBUF", "BPF_FUNC_loop", "BPF_FUNC_copy_from_user_task"},
			err: "has no BPF ring buffers, which came in Linux 5.8: nspidtrace needs Linux 5.8 or newer"},
		{name: "no task iterator", drop: []string{"bpf_iter_task"}, err: "has no BPF task iterators, which came in Linux 5.8"},
		{name: "no bpf_ktime_get_boot_ns", drop: []string{"BPF_FUNC_ktime_get_boot_ns"}, err: "has no bpf_ktime_get_boot_ns, which came in Linux 5.8"},
		{name: "no tp_btf", drop: []string{"btf_trace_sched_process_fork"}, err: "which came in Linux 5.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := probeFeatures(fakeKernel(t, tc.drop...))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Compat() != tc.compat {
				t.Errorf("Compat() = %v, want %v (%+v)", f.Compat(), tc.compat, f)
			}
		})
	}
	if _, err := probeFeatures(func() (*kernelbtf.Kernel, error) { return nil, kernelbtf.ErrNoBTF }); !errors.Is(err, errNoBTF) {
		t.Errorf("a kernel without BTF: %v", err)
	}
}

// TestProbeFeaturesAgreesWithTheKernel checks the BTF reading against
// loading a program that calls bpf_loop, as cilium/ebpf's probe does.
func TestProbeFeaturesAgreesWithTheKernel(t *testing.T) {
	testenv.Require(t)
	f, err := ProbeFeatures()
	if err != nil {
		t.Fatal(err)
	}
	err = features.HaveProgramHelper(ebpf.SocketFilter, asm.FnLoop)
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatal(err)
	}
	if f.Loop != (err == nil) {
		t.Errorf("BTF says bpf_loop %v, loading a program says %v", f.Loop, err)
	}
}

// compatKernel makes this kernel look like 5.10 to Open and ReadSnapshot:
// they load the _compat build.
func compatKernel(t testing.TB) {
	t.Helper()
	saved := probe
	t.Cleanup(func() { probe = saved })
	probe = func() (Features, error) {
		f, err := ProbeFeatures()
		f.Loop, f.CopyFromUserTask = false, false
		return f, err
	}
}

// TestCompatBuildMatches loads the build for 5.8–5.17 on this kernel: its
// snapshot must equal the modern build's, argv (read from /proc instead of
// the process's memory) included, for a process three namespaces deep.
func TestCompatBuildMatches(t *testing.T) {
	testenv.Require(t)
	deep := nestedSleeper(t)
	snapshot := func() map[uint32]events.Event {
		procs := map[uint32]events.Event{}
		err := ReadSnapshot(true, func(raw []byte) error {
			var ev events.Event
			if err := (&events.Decoder{}).Decode(raw, &ev); err != nil {
				return err
			}
			ev.Time = 0
			procs[ev.PID] = ev
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return procs
	}
	modern := snapshot()
	compatKernel(t)
	compat := snapshot()
	for _, pid := range []uint32{uint32(os.Getpid()), uint32(deep)} {
		m, c := modern[pid], compat[pid]
		if m.Levels == 0 || m.Args != c.Args || m.ArgsLen != c.ArgsLen || m.NSPid != c.NSPid || m.PidNS != c.PidNS || m.NSPPid != c.NSPPid || m.NS != c.NS {
			t.Errorf("pid %d: compat build gives\n%+v\nmodern build gives\n%+v", pid, c, m)
		}
	}
	if compat[uint32(deep)].Levels != 4 {
		t.Errorf("the nested sleeper has %d levels, want 4", compat[uint32(deep)].Levels)
	}
}

// TestCompatBuildTraces runs the 5.8–5.17 build of the tracing programs:
// fork, exec and exit of a storm in a pid namespace, every one counted.
func TestCompatBuildTraces(t *testing.T) {
	testenv.Require(t)
	compatKernel(t)
	expected, captured, lost, _, types := stormAccountingTypes(t, "forkexec", 200, 0, false)
	if captured != expected || lost != 0 {
		t.Errorf("captured %d of %d (%v), lost %d", captured, expected, types, lost)
	}
}

// TestPartialOpenReleasesEverything makes each step of Open fail in turn:
// no panic, the step's error comes back, and no file descriptor (program,
// map, link, ring buffer) is left open.
func TestPartialOpenReleasesEverything(t *testing.T) {
	testenv.Require(t)
	var steps []string
	failStep = func(step string) error { steps = append(steps, step); return nil }
	t.Cleanup(func() { failStep = nil })
	tr, err := Open(Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if len(steps) < 12 {
		t.Fatalf("Open went through only %v", steps)
	}
	for _, step := range steps {
		injectedErr := errors.New("injected at " + step)
		failStep = func(s string) error {
			if s == step {
				return injectedErr
			}
			return nil
		}
		before := openFDs(t)
		tr, err := Open(Options{Logger: zerolog.Nop()})
		if !errors.Is(err, injectedErr) || tr != nil {
			t.Errorf("%s: Open = %v, %v; want nil and the injected error", step, tr, err)
			continue
		}
		if after := openFDs(t); after != before {
			t.Errorf("%s: %d file descriptors open before, %d after the failed Open", step, before, after)
		}
	}
}

// nestedSleeper starts a sleep three pid namespaces below the host's and
// returns its host PID.
func nestedSleeper(t *testing.T) int {
	t.Helper()
	unshare := []string{"unshare", "--pid", "--fork", "--kill-child"}
	argv := slices.Concat(unshare, unshare, unshare, []string{"sleep", "3599"})
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pids, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range pids {
			if b, _ := os.ReadFile(p); string(b) == "sleep\x003599\x00" {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
	}
	t.Fatal("the nested sleep did not start")
	return 0
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
