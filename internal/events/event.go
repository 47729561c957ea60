// Package events defines nspidtrace's Event, decodes the kernel's ring-buffer
// records into it and encodes it as the NDJSON lines of docs/ndjson.md.
//
// It is pure Go: the live kernel (internal/loader) and a recording feed the
// same Event values, so everything here is tested without privileges.
package events

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Type is the kind of an Event.
type Type uint8

// Event types. The kernel's enum nspt_type uses the same numbers for the
// first five and for Proc (the task iterator's records); Lost and End are
// written by user space.
const (
	TypeFork Type = iota + 1
	TypeExec
	TypeExit
	TypeSetns
	TypeUnshare
	TypeLost
	TypeProc
	// TypeEnd is a recording's last line: when the recording stopped.
	TypeEnd
	// TypeRename: a process's comm changed other than by exec.
	TypeRename
	// TypeSignal: a signal was sent to the subject; Sig holds the rest.
	TypeSignal
	// TypeCred: the subject's credentials changed; OldIDs holds them before.
	TypeCred
	typeEnd

	// TypeMax is the largest type: types index arrays [TypeMax+1].
	TypeMax = typeEnd - 1
)

var typeNames = [typeEnd]string{
	TypeFork:    "fork",
	TypeExec:    "exec",
	TypeExit:    "exit",
	TypeSetns:   "setns",
	TypeUnshare: "unshare",
	TypeLost:    "lost",
	TypeProc:    "proc",
	TypeEnd:     "end",
	TypeRename:  "rename",
	TypeSignal:  "signal",
	TypeCred:    "cred",
}

// String returns the type's name as it appears in the NDJSON `type` field.
func (t Type) String() string {
	if t > 0 && t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType reads a type name such as "fork".
func ParseType(s string) (Type, error) {
	if t := parseTypeBytes([]byte(s)); t != 0 {
		return t, nil
	}
	return 0, fmt.Errorf("unknown event type %q", s)
}

// TypeSet is a set of event types, one bit per Type.
type TypeSet uint16

// Has reports whether t is in the set.
func (s TypeSet) Has(t Type) bool { return s&(1<<t) != 0 }

// Add puts t into the set.
func (s *TypeSet) Add(t Type) { *s |= 1 << t }

// LifecycleTypes are the types `trace --events` selects from.
var LifecycleTypes = []Type{TypeFork, TypeExec, TypeExit, TypeSetns, TypeUnshare, TypeRename, TypeCred}

// SelectableTypes are the types `trace --events` takes: the lifecycle, and
// signals, which are asked for by name.
var SelectableTypes = append(LifecycleTypes[:len(LifecycleTypes):len(LifecycleTypes)], TypeSignal)

// EndingSignals is the set of signals (bit n-1 for signal n) whose default
// action ends or stops a process (signal(7)): all but SIGCHLD, SIGCONT,
// SIGURG and SIGWINCH. Signal events report these.
const EndingSignals = ^uint64(0) &^ (1<<(17-1) | 1<<(18-1) | 1<<(23-1) | 1<<(28-1))

// ParseTypeSet reads a comma-separated list such as "fork,exec" of the
// lifecycle types; an empty string selects all of them.
func ParseTypeSet(list string) (TypeSet, error) {
	var set TypeSet
	if strings.TrimSpace(list) == "" {
		for _, t := range LifecycleTypes {
			set.Add(t)
		}
		return set, nil
	}
	for _, name := range strings.Split(list, ",") {
		t, err := ParseType(strings.TrimSpace(name))
		if err != nil || !slices.Contains(SelectableTypes, t) {
			return 0, fmt.Errorf("unknown event type %q (want fork, exec, exit, setns, unshare, rename, cred, signal)", name)
		}
		set.Add(t)
	}
	return set, nil
}

// NSKind indexes Event.NS: one entry per namespace kind, in the order of the
// `ns` object (and of /proc/PID/ns, sorted).
type NSKind int

// Namespace kinds.
const (
	NSCgroup NSKind = iota
	NSIPC
	NSMnt
	NSNet
	NSPid
	NSPidForChildren
	NSTime
	NSTimeForChildren
	NSUser
	NSUTS
	NSKinds
)

// NSNames are the namespace kinds' names: the `ns` object's keys and the
// file names under /proc/PID/ns.
var NSNames = [NSKinds]string{"cgroup", "ipc", "mnt", "net", "pid", "pid_for_children", "time", "time_for_children", "user", "uts"}

// Event is one thing that happened to a process, or (TypeProc) a snapshot of
// a live process. The byte fields are fixed arrays with a length so that one
// Event can be reused for every record without allocating.
type Event struct {
	Time   int64 // Unix nanoseconds, UTC
	Type   Type
	Thread bool // fork/exit of a thread rather than a whole process
	// Host, when set by the writer (trace --host), names the machine on
	// the line, so feeds merged from many nodes stay apart. Not parsed.
	Host []byte

	PID  uint32 // host TGID
	TID  uint32 // host thread ID
	PPID uint32 // host TGID of the real parent

	// Levels is how many entries of NSPid, PidNS and NSPPid are valid:
	// the host level first, the process's own pid namespace last.
	Levels int
	NSPid  [MaxLevels]uint32
	PidNS  [MaxLevels]uint32
	NSPPid [MaxLevels]uint32

	NS [NSKinds]uint32
	// UID and GID are the effective IDs in the host's user namespace
	// (Cred.EUID and Cred.EGID when Cred is known).
	UID, GID uint32
	// Cred: the subject's credentials at every user-namespace level. On
	// TypeCred, OldIDs are those before the change and Syscall the system
	// call's number that made it.
	Cred    Cred
	OldIDs  IDs
	Syscall int32

	// CgroupID is the kernel's ID of the subject's cgroup (0: unknown), and
	// Cgroup what it names, when a CgroupResolver or a recording told.
	CgroupID uint64
	Cgroup   *Cgroup

	CommLen uint8
	Comm    [CommLen]byte
	// Proc: the process has exited but its parent has not reaped it.
	Zombie bool
	// Signal events: what was sent, by whom.
	Sig SignalInfo
	// Rename: the comm before (Comm holds the new one).
	OldCommLen uint8
	OldComm    [CommLen]byte

	// Exec (and proc): the executed file and argv, NUL-separated.
	FilenameLen   uint16
	Filename      [FilenameLen]byte
	ArgsLen       uint16
	Args          [ArgsLen]byte
	ArgsTruncated bool
	OldTID        uint32 // exec by a non-leader thread: its TID before exec
	// Exec and proc: the executable has no name left in any directory
	// (deleted, or a memfd), and whether it is a memfd: what only the
	// kernel knows.
	ExeUnlinked, ExeMemfd bool

	// Exit (and a zombie's proc): the wait(2) status, and the host TGID
	// that inherits the process's children (0: its pid namespace dies with
	// it).
	ExitStatus uint32
	Reaper     uint32

	// StartBoot is when the process started, in CLOCK_BOOTTIME
	// nanoseconds (0 when unknown): with PID it names one process across
	// PID reuse (its key), and ParentStartBoot names the parent with PPID.
	// Start is the same instant as Unix ns.
	StartBoot, ParentStartBoot uint64
	Start                      int64

	// EnteredBy names the process outside the subject's pid namespace
	// that forked it (or the ancestor it descends from there) into the
	// namespace after setns: nsenter, docker exec. Zero for a process born
	// inside, from the namespace's init. Filled from the live tree.
	EnteredBy Key
	// OutsideInitCgroup: the subject's cgroup is not that of its pid
	// namespace's init (an nsenter'd shell, a --pid=container: sidecar).
	// Filled from the live tree.
	OutsideInitCgroup bool
	// Findings on the subject (docs/findings.md), in name order: filled from
	// the live tree, and read back from lines.
	Findings []Finding

	// Setns and unshare: the call's argument (nstype or flags), its return
	// value, and the namespaces before the call (NS holds them after).
	NSArg uint64
	Ret   int64
	OldNS [NSKinds]uint32

	// Lost: records the kernel dropped since the previous lost event.
	Count uint64

	// Ancestors of the subject, parent first, up to the host's init (or
	// as many as were asked for): filled from the live tree for exec lines
	// and for `<pid> --ancestors`, not by the kernel.
	Ancestors  [MaxAncestors]Ancestor
	NAncestors int
}

// SignalInfo is a signal event's own part: the signal, what became of it,
// and the sender at every pid-namespace level.
type SignalInfo struct {
	Number uint32
	Result int32 // 0 delivered, 1 ignored, 2 already pending, 3 queue full, 4 delivered without info
	Sender struct {
		PID, TID, UID uint32
		Levels        int
		NSPid, PidNS  [MaxLevels]uint32
		StartBoot     uint64
		CommLen       uint8
		Comm          [CommLen]byte
	}
}

// Key names one process on one boot: its host TGID and its start in
// CLOCK_BOOTTIME nanoseconds.
type Key struct {
	PID   uint32
	Start uint64
}

// NSInit reports whether the subject is the init (PID 1) of a pid
// namespace below the host's.
func (e *Event) NSInit() bool { return e.Levels > 1 && e.NSPid[e.Levels-1] == 1 }

// MaxAncestors bounds Event.Ancestors: deeper process trees are cut there.
const MaxAncestors = 64

// Ancestor is one process of an event's lineage.
type Ancestor struct {
	PID       uint32 // host TGID
	NSPid     uint32 // its PID in the subject's own pid namespace; 0 where not visible
	StartBoot uint64 // with PID, its key
	CommLen   uint8
	Comm      [CommLen]byte
}

// CommString returns the comm as a string (allocates; not for hot paths).
func (e *Event) CommString() string { return string(e.Comm[:e.CommLen]) }

// SetComm stores s as the comm, truncated like the kernel's TASK_COMM_LEN.
func (e *Event) SetComm(s string) {
	e.CommLen = uint8(copy(e.Comm[:CommLen-1], s))
}

// SetFilename stores s as the exec'd filename, truncated to FilenameLen.
func (e *Event) SetFilename(s string) {
	e.FilenameLen = uint16(copy(e.Filename[:], s))
}

// SetArgs stores argv NUL-separated, truncated to ArgsLen bytes.
func (e *Event) SetArgs(argv []string) {
	n := 0
	e.ArgsTruncated = false
	for _, a := range argv {
		if n+len(a)+1 > ArgsLen {
			e.ArgsTruncated = true
			break
		}
		n += copy(e.Args[n:], a)
		e.Args[n] = 0
		n++
	}
	e.ArgsLen = uint16(n)
}

// Argv returns the arguments as strings (allocates; not for hot paths).
func (e *Event) Argv() []string {
	var argv []string
	forEachArg(e.Args[:e.ArgsLen], func(a []byte) { argv = append(argv, string(a)) })
	return argv
}

// forEachArg calls f with each NUL-terminated argument in args; a last
// argument cut off without its NUL counts too.
func forEachArg(args []byte, f func([]byte)) {
	for len(args) > 0 {
		i := 0
		for i < len(args) && args[i] != 0 {
			i++
		}
		f(args[:i])
		if i == len(args) {
			return
		}
		args = args[i+1:]
	}
}

// Level returns the index of pid namespace ns in the event's levels, or -1.
func (e *Event) Level(ns uint32) int {
	for i := 0; i < e.Levels; i++ {
		if e.PidNS[i] == ns {
			return i
		}
	}
	return -1
}

// WaitStatus is a status as wait(2) reports it.
type WaitStatus uint32

// ExitCode is the status passed to exit(2), when no signal killed the process.
func (w WaitStatus) ExitCode() int { return int(w>>8) & 0xff }

// Signal is the signal that killed the process, or 0.
func (w WaitStatus) Signal() int { return int(w & 0x7f) }

// CoreDumped reports whether the killing signal dumped core.
func (w WaitStatus) CoreDumped() bool { return w&0x80 != 0 }

// String says how the process ended, for people: "exited with 7",
// "killed by signal 9 (SIGKILL), core dumped".
func (w WaitStatus) String() string {
	if sig := w.Signal(); sig != 0 {
		desc := fmt.Sprintf("killed by signal %d (%s)", sig, unix.SignalName(syscall.Signal(sig)))
		if w.CoreDumped() {
			desc += ", core dumped"
		}
		return desc
	}
	return fmt.Sprintf("exited with %d", w.ExitCode())
}

// Brief says it in a few characters, for a row: "exit 7", "signal 9, core".
func (w WaitStatus) Brief() string {
	if sig := w.Signal(); sig != 0 {
		s := "signal " + strconv.Itoa(sig)
		if w.CoreDumped() {
			s += ", core"
		}
		return s
	}
	return "exit " + strconv.Itoa(w.ExitCode())
}

// ExitCode is the exit status passed to exit(2), when no signal killed the process.
func (e *Event) ExitCode() int { return WaitStatus(e.ExitStatus).ExitCode() }

// Signal is the signal that killed the process, or 0.
func (e *Event) Signal() int { return WaitStatus(e.ExitStatus).Signal() }

// CoreDumped reports whether the killing signal dumped core.
func (e *Event) CoreDumped() bool { return WaitStatus(e.ExitStatus).CoreDumped() }
