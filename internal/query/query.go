// Package query opens what the one-shot commands (<pid>, tree), watch and
// trace --container answer from: a process tree (the live kernel's, /proc's
// without privileges, or a recording's at an instant) and the view the
// selection flags choose in it. It also reads the selection's references:
// a --pidns REF, a PID. Errors the user can act on are fault.Usage and
// fault.NotFound.
package query

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// Spec is what a command was asked to look at, as the flags say it.
type Spec struct {
	PidNS     string   // --pidns REF: look from inside that pid namespace
	Container string   // --container NAME
	Pod       string   // --pod NAMESPACE/NAME
	NetNS     string   // --netns NAME|REF
	From      []string // --from: the recording's files, or none for live
	At        string   // --at, with From

	// NoArgs: no one will print argv, so the live snapshot need not copy it.
	NoArgs bool
	// Flagged: only processes with findings, and their ancestors.
	Flagged bool
}

// Check refuses selections that do not go together, the same way for
// every command.
func (s Spec) Check() error {
	if s.At != "" && len(s.From) == 0 {
		return fault.Usagef("--at goes with --from")
	}
	if s.PidNS != "" && s.Container != "" {
		return fault.Usagef("give --pidns or --container, not both: --container already looks from the container's pid namespace")
	}
	if s.Pod != "" && (s.PidNS != "" || s.Container != "") {
		return fault.Usagef("give --pod alone, not with --pidns or --container: --container NAMESPACE/POD/NAME names one of a pod's containers")
	}
	if s.Pod != "" {
		if _, err := container.ParsePod(s.Pod); err != nil {
			return err // before a recording is read, or the kernel's tree
		}
	}
	return nil
}

// Open checks s, loads the tree and selects the view. Everything that can
// be checked before loading is.
func Open(s Spec, log zerolog.Logger) (*view.View, error) {
	if err := s.Check(); err != nil {
		return nil, err
	}
	v := &view.View{FromFile: len(s.From) > 0, Flagged: s.Flagged}
	var ref uint32
	var err error
	if !v.FromFile || !IsPID(s.PidNS) {
		if ref, err = ResolvePidNS(s.PidNS); err != nil {
			return nil, err
		}
	}
	if err := load(v, s, log); err != nil {
		return nil, err
	}
	if v.Fallback && (s.PidNS != "" || s.Container != "" || s.Pod != "") {
		return nil, fmt.Errorf("--pidns, --container and --pod need the privileges to read other processes' namespaces: %w", loader.ErrNoPrivileges)
	}
	if v.FromFile && IsPID(s.PidNS) {
		if ref, err = v.RefInRecording(s.PidNS); err != nil {
			return nil, err
		}
	}
	if v.NetNS, err = view.ResolveNetNS(s.NetNS, v.Tree, v.FromFile); err != nil {
		return nil, err
	}
	return v, v.Select(s.Container, s.Pod, ref)
}

// load builds the tree: the live kernel's, or with From the recording's as
// of At.
func load(v *view.View, s Spec, log zerolog.Logger) error {
	if v.FromFile {
		v.Tree = pidmap.NewTree(pidmap.DefaultExitedKept)
		rep, err := source.Replay(s.From, s.At, log, v.Tree, nil)
		if err != nil {
			return err
		}
		v.AsOf = rep.Cutoff
		if v.AsOf == 0 {
			v.AsOf = rep.End
		}
		return nil
	}
	var err error
	if v.Tree, v.Fallback, err = source.Live(log, !s.NoArgs); err != nil {
		return err
	}
	v.AsOf = v.Tree.Time()
	own, err := procfs.OwnPidNS(procfs.ProcRoot)
	if err != nil {
		return fmt.Errorf("read the caller's pid namespace: %w", err)
	}
	v.Own = v.Tree.Namespace(own)
	return nil
}

// KernelOnlyEnv, set to 1, makes <pid> ask the kernel's task iterator even
// where /proc would answer: to compare the two (docs/cli.md).
const KernelOnlyEnv = "NSPIDTRACE_KERNEL_ONLY"

// Lineage answers <pid> from /proc alone (procfs.Lineage) where /proc shows
// all the answer needs: live, as root, from the host's pid namespace (where
// NStgid holds every level), without --pidns, --container or --netns. The
// caller leaves JSON out: it carries the process's key, its start in
// nanoseconds, which /proc counts only in clock ticks. nil when the
// iterator must answer (Open); it then gives the same answer, or the error.
func Lineage(s Spec, pid uint32, log zerolog.Logger) *view.View {
	if len(s.From) > 0 || s.PidNS != "" || s.Container != "" || s.Pod != "" || s.NetNS != "" ||
		os.Getenv(KernelOnlyEnv) == "1" || os.Geteuid() != 0 || !procfs.InHostPidNS(procfs.ProcRoot) {
		return nil
	}
	r, err := source.CgroupResolver()
	if err != nil {
		return nil // the iterator's path says what is wrong with it
	}
	defer r.Close()
	start := time.Now()
	tree, err := procfs.Lineage(procfs.ProcRoot, int(pid), func(pid int) (*events.Cgroup, error) {
		return r.OfProcess(procfs.ProcRoot, pid)
	})
	if err != nil {
		log.Debug().Err(err).Msg("asking the kernel's task iterator")
		return nil
	}
	v := &view.View{Tree: tree, AsOf: time.Now().UnixNano(), Own: tree.Namespace(procfs.InitPidNS)}
	v.NS = v.Own
	log.Debug().Dur("took", time.Since(start)).Int("processes", tree.Len()).Msg("answered from /proc")
	return v
}

// ResolvePidNS reads a --pidns REF; "" means no restriction.
func ResolvePidNS(ref string) (uint32, error) {
	if ref == "" {
		return 0, nil
	}
	ns, err := procfs.ResolvePidNS(procfs.ProcRoot, ref)
	switch {
	case errors.Is(err, procfs.ErrBadRef):
		return 0, fault.Usage{Msg: "--pidns: " + err.Error()}
	case errors.Is(err, procfs.ErrNoProcess), errors.Is(err, procfs.ErrNotFound):
		return 0, fault.NotFound{Err: err}
	}
	return ns, err
}

// IsPID reports whether a REF is the PID form.
func IsPID(ref string) bool {
	n, err := strconv.ParseUint(ref, 10, 32)
	return err == nil && n > 0 && n <= procfs.PIDMaxLimit
}

// ParsePID reads a PID argument: a number from 1 to the kernel's limit.
func ParsePID(what, s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 || n > procfs.PIDMaxLimit {
		return 0, fault.Usagef("%s %q is not a PID (want a number from 1 to %d)", what, s, procfs.PIDMaxLimit)
	}
	return uint32(n), nil
}
