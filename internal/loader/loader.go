// Package loader loads nspidtrace's BPF programs, attaches them, hands over
// the raw records of their ring buffer and task iterator, and detaches them
// again. It is the only package that talks to the kernel's BPF subsystem;
// callers decode the records with events.Decoder.
package loader

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// DefaultRingBytes is the ring buffer's default size. The reader is woken
// at a quarter of it, and BenchmarkStormOverhead loses nothing with it on a
// 2-vCPU machine. Its pages are mapped twice into the reader (the kernel's
// trick for records that wrap around), so it counts twice in trace's
// resident memory: 16 MiB made that 50 MiB of which 32 MiB were the ring.
const DefaultRingBytes = 8 << 20

// Options select what the kernel side reports.
type Options struct {
	// Threads also reports thread creation and exit.
	Threads bool
	// Signals reports the signals whose default action ends or stops a
	// process (events.EndingSignals).
	Signals bool
	// PidNS, when not 0, keeps only processes inside that pid namespace
	// (at any level), filtered in the kernel.
	PidNS uint32
	// RingBytes is the ring buffer's size: a power of two, at least a page.
	// 0 means DefaultRingBytes.
	RingBytes int
	// FlushInterval is how long a record may wait in the ring buffer while
	// records keep coming (Run): from a millisecond to IdleInterval. 0
	// means DefaultFlushInterval.
	FlushInterval time.Duration
	// Logger receives diagnostics; never one line per event.
	Logger zerolog.Logger
}

// Tracer is the loaded and attached BPF side. Close releases it.
type Tracer struct {
	objs     objects
	features Features
	links    []link.Link
	reader   *ringbuf.Reader
	waiter   *ringWaiter
	flush    time.Duration // Options.FlushInterval
	// misses is the programs' recursion misses, as read at missesRead.
	misses     uint64
	missesRead time.Time
	log        zerolog.Logger
}

// objects are what Open loads: the maps, and one build of each program
// (see chooseBuild).
type objects struct {
	nspidtraceMaps
	programs
	// ReaderAsleep tells the programs to wake the reader at the next
	// record (Run).
	ReaderAsleep *ebpf.Variable `ebpf:"reader_asleep"`
}

type programs struct {
	HandleFork         *ebpf.Program `ebpf:"handle_fork"`
	HandleExec         *ebpf.Program `ebpf:"handle_exec"`
	HandleExit         *ebpf.Program `ebpf:"handle_exit"`
	HandleRename       *ebpf.Program `ebpf:"handle_rename"`
	HandleSignal       *ebpf.Program `ebpf:"handle_signal"`
	HandleSetnsEnter   *ebpf.Program `ebpf:"handle_setns_enter"`
	HandleSetnsExit    *ebpf.Program `ebpf:"handle_setns_exit"`
	HandleUnshareEnter *ebpf.Program `ebpf:"handle_unshare_enter"`
	HandleUnshareExit  *ebpf.Program `ebpf:"handle_unshare_exit"`
	HandleCredEnter    *ebpf.Program `ebpf:"handle_cred_enter"`
	HandlePrctlEnter   *ebpf.Program `ebpf:"handle_prctl_enter"`
	HandleCredExit     *ebpf.Program `ebpf:"handle_cred_exit"`
	HandleCgroupMkdir  *ebpf.Program `ebpf:"handle_cgroup_mkdir"`
	DumpTask           *ebpf.Program `ebpf:"dump_task"`
}

func (o *objects) Close() error {
	p := &o.programs
	return errors.Join(o.nspidtraceMaps.Close(), _NspidtraceClose(p.HandleFork, p.HandleExec, p.HandleExit,
		p.HandleRename, p.HandleSignal, p.HandleSetnsEnter, p.HandleSetnsExit, p.HandleUnshareEnter,
		p.HandleUnshareExit, p.HandleCredEnter, p.HandlePrctlEnter, p.HandleCredExit, p.HandleCgroupMkdir, p.DumpTask))
}

// Open checks the kernel, loads the BPF objects and attaches every program.
// On failure it releases whatever it had opened and returns an error that
// says what is missing.
func Open(opts Options) (*Tracer, error) {
	if opts.RingBytes == 0 {
		opts.RingBytes = DefaultRingBytes
	}
	if err := checkRingBytes(opts.RingBytes); err != nil {
		return nil, err
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if err := CheckFlushInterval(opts.FlushInterval); err != nil {
		return nil, err
	}
	features, err := checkPrivileges()
	if err == nil {
		err = injected("tracefs")
	}
	if err == nil {
		err = ensureTracefs(opts.Logger)
	}
	if err != nil {
		return nil, err
	}
	spec, err := configuredSpec(opts, features)
	if err != nil {
		return nil, err
	}

	t := &Tracer{features: features, flush: opts.FlushInterval, log: opts.Logger.With().Str("component", "loader").Logger()}
	if features.Compat() {
		t.log.Info().Str("kernel", features.Release).Msgf("this kernel has no %s: running the programs built for Linux %s to 5.17; argv of processes alive at start is read from /proc", features.Missing(), MinKernel)
	}
	// Whatever step fails, what the earlier ones opened is released. (The
	// cleanup holds t itself: a deferred cleanup of a named result would
	// see the nil that `return nil, err` stores there, and panic.)
	fail := func(err error) (*Tracer, error) {
		t.Close()
		return nil, err
	}
	if err := injected("load"); err != nil {
		return fail(err)
	}
	// cilium/ebpf decodes the kernel's BTF for the tracepoints' BTF IDs
	// and CO-RE; neither it nor the probe's index is needed after the load.
	err = spec.LoadAndAssign(&t.objs, &ebpf.CollectionOptions{Cache: btf.NewCache()})
	releaseKernelBTF()
	// The decoded types are garbage now, tens of MB of it: a tracer runs
	// for hours, so give the memory back at once (one collection, a few ms)
	// rather than keep it resident until the runtime's scavenger does.
	debug.FreeOSMemory()
	if err != nil {
		return fail(explainLoadError(err, features))
	}
	if err := t.attach(); err != nil {
		return fail(err)
	}
	if err := injected("ring buffer"); err != nil {
		return fail(err)
	}
	if t.reader, err = ringbuf.NewReader(t.objs.Events); err != nil {
		return fail(fmt.Errorf("open the ring buffer: %w", err))
	}
	if t.waiter, err = newRingWaiter(t.objs.Events, func() bool { return t.reader.AvailableBytes() > 0 }); err != nil {
		return fail(err)
	}
	t.log.Debug().Int("ring_bytes", opts.RingBytes).Bool("threads", opts.Threads).
		Uint32("pidns", opts.PidNS).Int("links", len(t.links)).Msg("attached")
	return t, nil
}

// configuredSpec is the programs' spec for this kernel, its ring buffer
// and knobs set from opts.
func configuredSpec(opts Options, features Features) (*ebpf.CollectionSpec, error) {
	spec, err := loadSpec(loadNspidtrace, features)
	if err != nil {
		return nil, err
	}
	spec.Maps[nspidtraceMapEvents].MaxEntries = uint32(opts.RingBytes)
	knobs := map[string]any{
		nspidtraceVarWithThreads: opts.Threads,
		nspidtraceVarTargetPidns: opts.PidNS,
		// Wake the reader when a quarter of the ring is full; its poll
		// deadline picks up anything less.
		nspidtraceVarWakeupBytes:  uint64(opts.RingBytes / 4),
		nspidtraceVarSignalMask:   uint64(0),
		nspidtraceVarCgroupSubsys: cgroupSubsys(),
	}
	if opts.Signals {
		knobs[nspidtraceVarSignalMask] = events.EndingSignals
	}
	return spec, setKnobs(spec, knobs)
}

// hook is a tracing program and the tracepoint it attaches to: a BTF
// tracepoint (tp_btf) when group is "", else a classic one of group.
type hook struct {
	group, name string
	prog        *ebpf.Program
}

// credSyscalls are the system calls that can change a process's
// credentials: handle_cred_enter and handle_cred_exit run at their entry
// and exit (prctl has its own entry program, which looks at the option).
// setgroups is not among them: the supplementary groups are not reported.
// Nor are execve and execveat: the exec record has the new credentials,
// the tree the old ones (pidmap.Follower reports the change).
var credSyscalls = []string{"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid",
	"setfsuid", "setfsgid", "capset", "seccomp", "prctl"}

// tracing lists the programs that run on tracepoints, in attach order.
func (o *objects) tracing() []hook {
	hooks := []hook{
		// First: a cgroup's path is known before its processes' records.
		{"cgroup", "cgroup_mkdir", o.HandleCgroupMkdir},
		{"", "sched_process_fork", o.HandleFork},
		{"", "sched_process_exec", o.HandleExec},
		{"", "sched_process_exit", o.HandleExit},
		{"", "task_rename", o.HandleRename},
		{"", "signal_generate", o.HandleSignal},
		{"syscalls", "sys_enter_setns", o.HandleSetnsEnter},
		{"syscalls", "sys_exit_setns", o.HandleSetnsExit},
		{"syscalls", "sys_enter_unshare", o.HandleUnshareEnter},
		{"syscalls", "sys_exit_unshare", o.HandleUnshareExit},
	}
	for _, name := range credSyscalls {
		enter := o.HandleCredEnter
		if name == "prctl" {
			enter = o.HandlePrctlEnter
		}
		hooks = append(hooks, hook{"syscalls", "sys_enter_" + name, enter}, hook{"syscalls", "sys_exit_" + name, o.HandleCredExit})
	}
	return hooks
}

// attach links every program to its hook; links are closed by Close.
func (t *Tracer) attach() error {
	for _, h := range t.objs.tracing() {
		if err := injected("attach " + h.name); err != nil {
			return err
		}
		var l link.Link
		var err error
		if h.group != "" {
			l, err = link.Tracepoint(h.group, h.name, h.prog, nil)
		} else {
			l, err = link.AttachTracing(link.TracingOptions{Program: h.prog})
		}
		if err != nil {
			return fmt.Errorf("attach %s: %w", h.name, err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

// failStep, set only by tests, fails the step of Open it is called with
// when it returns an error: each step of a partial Open is made to fail in
// turn, and what the earlier steps opened must be released.
var failStep func(step string) error

func injected(step string) error {
	if failStep == nil {
		return nil
	}
	return failStep(step)
}

// detach closes the links, so the kernel stops producing.
//
// The links are closed at once, each in its goroutine: closing a syscall
// tracepoint's link waits for an RCU grace period in the kernel (some 60 ms
// here), and one after the other the 30 of them kept a stopping trace
// waiting 1.6 s.
func (t *Tracer) detach() {
	var wg sync.WaitGroup
	for _, l := range t.links {
		wg.Go(func() {
			if err := l.Close(); err != nil {
				t.log.Warn().Err(err).Msg("detach program")
			}
		})
	}
	wg.Wait()
	t.links = nil
}

// Close detaches the programs and releases the ring buffer and the BPF
// objects, in the reverse order of Open. It is safe after a partial Open.
func (t *Tracer) Close() error {
	t.detach()
	var errs []error
	if t.waiter != nil {
		errs = append(errs, t.waiter.close())
		t.waiter = nil
	}
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
		t.reader = nil
	}
	errs = append(errs, t.objs.Close())
	return errors.Join(errs...)
}

// Lost returns how many events the kernel dropped since Open: records
// that did not fit in the ring buffer, summed over CPUs, and the times a
// program did not run at all because one of the same program was already
// running on that CPU (its recursion misses, counted from 5.12). The
// second happens where tracepoints are preemptible, under load: seen on
// 7.2 guests with one CPU, where an exec now and then went unreported.
// Call it from one goroutine at a time.
func (t *Tracer) Lost() (uint64, error) {
	var perCPU []uint64
	if err := t.objs.Lost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read the lost-records counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	if time.Since(t.missesRead) >= missesInterval {
		t.misses = t.objs.recursionMisses()
		t.missesRead = time.Now()
	}
	return n + t.misses, nil
}

// missesInterval is how often Lost reads the recursion misses: each
// program's is a system call, too many for every drain of the ring buffer
// (a fifth of the tracer's time on a storm). A miss is so reported up to a
// second late, and still resynchronises the tree.
const missesInterval = time.Second

// recursionMisses sums the tracing programs' recursion misses.
func (o *objects) recursionMisses() uint64 {
	var n uint64
	counted := map[*ebpf.Program]bool{} // one program can run on many hooks
	for _, h := range o.tracing() {
		if counted[h.prog] {
			continue
		}
		counted[h.prog] = true
		if st, err := h.prog.Stats(); err == nil {
			n += st.RecursionMisses
		}
	}
	return n
}

func checkRingBytes(n int) error {
	page := os.Getpagesize()
	if n < page || n&(n-1) != 0 {
		return fmt.Errorf("ring buffer size %d is not a power of two of at least %d bytes", n, page)
	}
	return nil
}

// ErrNoPrivileges is returned when the caller may not load BPF programs.
var ErrNoPrivileges = errors.New("loading BPF programs needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN: run as root on the host (sudo), or give a container those capabilities")

// checkPrivileges checks what every BPF load needs: a kernel with the
// features (its BTF included), the privileges, and on kernels before 5.11 a
// memlock limit high enough for the maps. It returns the kernel's features.
func checkPrivileges() (Features, error) {
	features, err := probe()
	if err != nil {
		return features, err
	}
	// Capabilities, not the UID: root in a container (docker exec) is
	// UID 0 without CAP_BPF or CAP_SYS_ADMIN, and its loads fail. And
	// only the host's user namespace's: root in a user namespace of its
	// own (rootless Podman, unshare -r) has every capability there, and
	// none that BPF heeds.
	if !inInitialUserNS() || !hasBPFCapabilities() {
		return features, ErrNoPrivileges
	}
	removeMemlock()
	return features, nil
}

// removeMemlock lifts RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF
// maps to (later ones charge the memory cgroup and ignore it). It is what
// cilium/ebpf's rlimit package does, without that package's start-up probe:
// its init loads a BPF map in every run of every command (0.9 ms), where
// lifting the limit unasked costs one system call, made only before a load.
// Where it may not be lifted (no CAP_SYS_RESOURCE, as in some containers)
// nothing is lost on 5.11 and later; on older kernels a load that then
// fails says so (explainLoadError).
func removeMemlock() {
	inf := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	unix.Setrlimit(unix.RLIMIT_MEMLOCK, &inf)
}

// setKnobs sets the programs' constants (const volatile globals) before
// they are loaded: the verifier then prunes what they switch off.
func setKnobs(spec *ebpf.CollectionSpec, knobs map[string]any) error {
	for name, value := range knobs {
		if err := spec.Variables[name].Set(value); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// loadSpec parses an embedded BPF object (loadNspidtrace, or
// loadNspidtraceIter: the task iterator alone), with each program name
// standing for the build the kernel can load.
func loadSpec(object func() (*ebpf.CollectionSpec, error), features Features) (*ebpf.CollectionSpec, error) {
	spec, err := parseObject(object)
	if err != nil {
		return nil, err
	}
	chooseBuild(spec, features)
	return spec, nil
}

// parseObject parses an embedded BPF object, both builds in it.
func parseObject(object func() (*ebpf.CollectionSpec, error)) (*ebpf.CollectionSpec, error) {
	spec, err := object()
	if err != nil {
		return nil, fmt.Errorf("parse the embedded BPF object: %w", err)
	}
	return spec, nil
}

// initialUserNS is the inode of the host's user namespace (the kernel's
// PROC_USER_INIT_INO).
const initialUserNS = 0xeffffffd

// inInitialUserNS reports whether the caller is in the host's user
// namespace; true where that cannot be read, so the load says what fails.
func inInitialUserNS() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/self/ns/user", &st) != nil || st.Ino == initialUserNS
}

// hasBPFCapabilities reports whether the effective set allows BPF: CAP_BPF
// and CAP_PERFMON, or CAP_SYS_ADMIN.
func hasBPFCapabilities() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	// Before Linux 5.8 CAP_SYS_ADMIN alone allowed BPF (and there is no
	// CAP_BPF); from 5.8 it still does.
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON) || has(unix.CAP_SYS_ADMIN)
}

// explainLoadError turns a load failure into what the user can do about it.
func explainLoadError(err error, f Features) error {
	var verr *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("load BPF programs: %w (needs root, or CAP_BPF and CAP_PERFMON; a lockdown or seccomp policy can also forbid BPF; before Linux 5.11, so can a low memlock limit, ulimit -l, that could not be lifted without CAP_SYS_RESOURCE)", err)
	case errors.As(err, &verr):
		return fmt.Errorf("the verifier of this kernel (%s) rejected nspidtrace's BPF programs (please report this, with the output of nspidtrace version): %w", f.Release, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("load BPF programs: %w (nspidtrace needs Linux %s or newer with BTF, ring buffers, BTF tracepoints and task iterators)", err, MinKernel)
	}
	return fmt.Errorf("load BPF programs: %w", err)
}

// ensureTracefs mounts tracefs at /sys/kernel/tracing when no tracefs is
// mounted: the syscall tracepoints are attached through it. systemd usually
// mounts it; minimal VMs and containers often do not.
func ensureTracefs(log zerolog.Logger) error {
	for _, p := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && (st.Type == unix.TRACEFS_MAGIC || st.Type == unix.DEBUGFS_MAGIC) {
			if _, err := os.Stat(p + "/events"); err == nil {
				return nil
			}
		}
	}
	if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("mount tracefs at /sys/kernel/tracing (needed for the setns/unshare tracepoints): %w", err)
	}
	log.Info().Str("component", "loader").Msg("mounted tracefs at /sys/kernel/tracing")
	return nil
}
