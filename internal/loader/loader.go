// Package loader loads nspidtrace's BPF programs, attaches them, hands over
// the raw records of their ring buffer and task iterator, and detaches them
// again. It is the only package that talks to the kernel's BPF subsystem;
// callers decode the records with events.Decoder.
package loader

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// MinKernel is the oldest Linux release nspidtrace runs on: sleepable task
// iterators, bpf_loop and bpf_copy_from_user_task came in 5.17 and 5.18.
// The README and docs/kernel.md name the same version.
const MinKernel = "5.18"

// DefaultRingBytes is the ring buffer's default size: about two seconds of a
// fork+exec+exit storm on a small machine before anything is dropped.
const DefaultRingBytes = 16 << 20

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
	// Logger receives diagnostics; never one line per event.
	Logger zerolog.Logger
}

// Tracer is the loaded and attached BPF side. Close releases it.
type Tracer struct {
	objs   nspidtraceObjects
	links  []link.Link
	reader *ringbuf.Reader
	log    zerolog.Logger
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
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	if err := ensureTracefs(opts.Logger); err != nil {
		return nil, err
	}

	spec, err := loadNspidtrace()
	if err != nil {
		return nil, fmt.Errorf("parse the embedded BPF object: %w", err)
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
	for name, value := range knobs {
		if err := spec.Variables[name].Set(value); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}

	t := &Tracer{log: opts.Logger.With().Str("component", "loader").Logger()}
	// Whatever step fails, what the earlier ones opened is released. (The
	// cleanup holds t itself: a deferred cleanup of a named result would
	// see the nil that `return nil, err` stores there, and panic.)
	fail := func(err error) (*Tracer, error) {
		t.Close()
		return nil, err
	}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return fail(explainLoadError(err))
	}
	if err := t.attach(); err != nil {
		return fail(err)
	}
	if t.reader, err = ringbuf.NewReader(t.objs.Events); err != nil {
		return fail(fmt.Errorf("open the ring buffer: %w", err))
	}
	t.log.Debug().Int("ring_bytes", opts.RingBytes).Bool("threads", opts.Threads).
		Uint32("pidns", opts.PidNS).Int("links", len(t.links)).Msg("attached")
	return t, nil
}

// attach links every program to its hook; links are closed by Close.
func (t *Tracer) attach() error {
	tracing := []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_process_fork", t.objs.HandleFork},
		{"sched_process_exec", t.objs.HandleExec},
		{"sched_process_exit", t.objs.HandleExit},
		{"task_rename", t.objs.HandleRename},
		{"signal_generate", t.objs.HandleSignal},
	}
	for _, p := range tracing {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog})
		if err != nil {
			return fmt.Errorf("attach %s: %w", p.name, err)
		}
		t.links = append(t.links, l)
	}
	syscalls := []struct {
		name string
		prog *ebpf.Program
	}{
		{"sys_enter_setns", t.objs.HandleSetnsEnter},
		{"sys_exit_setns", t.objs.HandleSetnsExit},
		{"sys_enter_unshare", t.objs.HandleUnshareEnter},
		{"sys_exit_unshare", t.objs.HandleUnshareExit},
	}
	for _, p := range syscalls {
		l, err := link.Tracepoint("syscalls", p.name, p.prog, nil)
		if err != nil {
			return fmt.Errorf("attach syscalls/%s: %w", p.name, err)
		}
		t.links = append(t.links, l)
	}
	return nil
}

// detach closes the links, newest first, so the kernel stops producing.
func (t *Tracer) detach() {
	for i := len(t.links) - 1; i >= 0; i-- {
		if err := t.links[i].Close(); err != nil {
			t.log.Warn().Err(err).Msg("detach program")
		}
	}
	t.links = nil
}

// Close detaches the programs and releases the ring buffer and the BPF
// objects, in the reverse order of Open. It is safe after a partial Open.
func (t *Tracer) Close() error {
	t.detach()
	var errs []error
	if t.reader != nil {
		errs = append(errs, t.reader.Close())
		t.reader = nil
	}
	errs = append(errs, t.objs.Close())
	return errors.Join(errs...)
}

// Lost returns how many records the kernel could not put in the ring buffer
// since Open, summed over CPUs.
func (t *Tracer) Lost() (uint64, error) {
	var perCPU []uint64
	if err := t.objs.Lost.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read the lost-records counter: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

func checkRingBytes(n int) error {
	page := os.Getpagesize()
	if n < page || n&(n-1) != 0 {
		return fmt.Errorf("ring buffer size %d is not a power of two of at least %d bytes", n, page)
	}
	return nil
}

// ErrNoPrivileges is returned when the caller may not load BPF programs.
var ErrNoPrivileges = errors.New("loading BPF programs needs root or the CAP_BPF and CAP_PERFMON capabilities (try sudo)")

// checkPrivileges checks what every BPF load needs: BTF, the privileges,
// and on old kernels a memlock limit high enough for the maps.
func checkPrivileges() error {
	if err := checkBTF(); err != nil {
		return err
	}
	if os.Geteuid() != 0 && !hasBPFCapabilities() {
		return ErrNoPrivileges
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raise the memlock limit for BPF maps: %w", err)
	}
	return nil
}

// checkBTF fails when the kernel has no BTF, which CO-RE and tp_btf need.
func checkBTF() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return errors.New("the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): nspidtrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y")
	}
	return nil
}

// hasBPFCapabilities reports whether the effective set has CAP_BPF and CAP_PERFMON.
func hasBPFCapabilities() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON)
}

// explainLoadError turns a load failure into what the user can do about it.
func explainLoadError(err error) error {
	var verr *ebpf.VerifierError
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("load BPF programs: %w (needs root, or CAP_BPF and CAP_PERFMON; a lockdown or seccomp policy can also forbid BPF)", err)
	case errors.As(err, &verr):
		return fmt.Errorf("the kernel's verifier rejected nspidtrace's BPF programs (please report this with your kernel version): %w", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("load BPF programs: %w (nspidtrace needs Linux %s or newer with BTF, ring buffers, BTF tracepoints and sleepable task iterators)", err, MinKernel)
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
