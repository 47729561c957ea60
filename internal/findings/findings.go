// Package findings marks what responders look for on a process, computed
// from what an event and the tree around it already carry: no policy to
// write, nothing blocked (docs/findings.md). The tree (internal/pidmap)
// judges every event it applies with Judge, live and replayed alike, so a
// recording read back raises the same findings as the machine that wrote it.
package findings

import (
	"bytes"
	"fmt"
	"math/bits"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// Facts is what the tree knows around an event about its subject, from
// before the event applied.
type Facts struct {
	// Before is the subject's credentials before the event; nil at its
	// first sighting, when nothing can be compared.
	Before *events.Cred
	// Container is the subject's container (its cgroup's); nil for none.
	Container *events.Container
	// HostNS holds the host init's namespaces, by kind (0: not known).
	HostNS [events.NSKinds]uint32
	// NSContainer returns a container, other than the subject's and its
	// pod's, whose processes are in namespace ino of kind; nil when none.
	NSContainer func(kind int, ino uint32) *events.Container
}

// Judge calls raise with each finding ev shows about its subject, in name
// order. Reasons quote what processes chose: the caller escapes them for
// terminals, and they are bounded by events.MaxReason. A finding with
// Image set is about the program the subject runs: the caller ends it at
// the subject's next exec (a runtime's helper that runs a container's
// command is not what it was before).
func Judge(ev *events.Event, f *Facts, raise func(events.Finding)) {
	say := func(name events.FindingName, image bool, format string, args ...any) {
		reason := fmt.Sprintf(format, args...)
		if len(reason) > events.MaxReason {
			reason = strings.ToValidUTF8(reason[:events.MaxReason-len("…")], "") + "…"
		}
		raise(events.Finding{Name: name, Time: ev.Time, Reason: reason, Image: image})
	}
	switch ev.Type {
	case events.TypeExec:
		if why := masquerade(ev); why != "" {
			say(events.FindMasquerade, true, "%s", why)
		}
		if why := fileless(ev); why != "" {
			say(events.FindFileless, true, "%s", why)
		}
	case events.TypeProc:
		// A snapshot shows the program a process runs, not how it came to:
		// argv[0] or a comm like a kernel thread's in a process that has
		// argv (kernel threads have none), and what the kernel says of its
		// executable.
		argv0, _, _ := bytes.Cut(ev.Args[:ev.ArgsLen], []byte{0})
		if comm := ev.Comm[:ev.CommLen]; len(argv0) > 0 && !kernelThread(ev) && (kernelLike(argv0) || kernelLike(comm)) {
			say(events.FindMasquerade, true, "argv[0] %q and comm %q: it looks like a kernel thread, and has argv", argv0, comm)
		}
		if why := fileless(ev); why != "" {
			say(events.FindFileless, true, "%s", why)
		}
	case events.TypeRename:
		if comm := ev.Comm[:ev.CommLen]; kernelLike(comm) && !kernelThread(ev) {
			say(events.FindMasquerade, true, "renamed itself %q, as a kernel thread is named", comm)
		}
	case events.TypeSetns:
		if why := nsEscape(ev, f); why != "" {
			say(events.FindNSEscape, false, "%s", why)
		}
	}
	if !ev.Cred.Known || ev.Type != events.TypeExec && ev.Type != events.TypeCred && ev.Type != events.TypeProc {
		return
	}
	if why := privilegeGain(ev, f); why != "" {
		say(events.FindPrivilegeGain, false, "%s", why)
	} else if why := unguardedAdmin(ev, f); why != "" {
		say(events.FindPrivilegeGain, true, "%s", why)
	}
	if why := userNSRoot(ev, f); why != "" {
		say(events.FindNewUsernsRoot, false, "%s", why)
	}
}

// masquerade: argv[0] names neither the executable nor its comm, or looks
// like a kernel thread. A script's argv[0] is its interpreter, which the
// kernel put there: not the script's doing.
func masquerade(ev *events.Event) string {
	args := ev.Args[:ev.ArgsLen]
	argv0, rest, _ := bytes.Cut(args, []byte{0})
	if len(argv0) == 0 {
		return ""
	}
	exe := ev.Filename[:ev.FilenameLen]
	if kernelLike(argv0) {
		return fmt.Sprintf("argv[0] %q looks like a kernel thread; it runs %s", argv0, exe)
	}
	// A file named by a descriptor has no name to differ from (fileless
	// says what matters of it); a program that re-executes itself through
	// /proc/self/exe keeps the name it had (runc).
	if byFD(exe) || ev.ExeMemfd || string(exe) == "/proc/self/exe" {
		return ""
	}
	// binfmt_script: argv is interpreter, [its argument,] the script.
	arg1, rest, _ := bytes.Cut(rest, []byte{0})
	arg2, _, _ := bytes.Cut(rest, []byte{0})
	if bytes.Equal(arg1, exe) || bytes.Equal(arg2, exe) {
		return ""
	}
	name := bytes.TrimPrefix(base(argv0), []byte("-")) // a login shell's -bash
	comm := ev.Comm[:ev.CommLen]
	if bytes.Equal(name, base(exe)) || bytes.Equal(name, comm) ||
		len(name) > len(comm) && len(comm) == events.CommLen-1 && bytes.HasPrefix(name, comm) {
		return ""
	}
	return fmt.Sprintf("argv[0] %q is neither the executable %s nor its name %q", argv0, exe, comm)
}

func base(path []byte) []byte {
	if i := bytes.LastIndexByte(path, '/'); i >= 0 && i < len(path)-1 {
		return path[i+1:]
	}
	return path
}

// kernelThreadNames start the comms the kernel gives its threads.
var kernelThreadNames = []string{
	"kworker/", "ksoftirqd/", "kthreadd", "migration/", "rcu_", "rcuc/", "rcuop/", "kswapd", "watchdog/",
	"jbd2/", "irq/", "cpuhp/", "idle_inject/", "khugepaged", "kcompactd", "kdevtmpfs", "kauditd", "oom_reaper",
}

// kernelLike reports whether a name looks like a kernel thread's: as ps
// shows one ([kworker/0:1]) or as its comm reads (kworker/0:1).
func kernelLike(name []byte) bool {
	if len(name) > 2 && name[0] == '[' && name[len(name)-1] == ']' {
		return true
	}
	for _, k := range kernelThreadNames {
		if bytes.HasPrefix(name, []byte(k)) {
			return true
		}
	}
	return false
}

// kernelThread reports whether ev's subject is a kernel thread: kthreadd
// (host PID 2) or one it started. Kernel threads run at the host's level.
func kernelThread(ev *events.Event) bool {
	return ev.Levels == 1 && (ev.PID == 2 || ev.PPID == 2)
}

// fileless: the kernel says, at exec or in a snapshot, that the executable
// is a memfd or has no name left in any directory. A file executed through a descriptor
// (/proc/self/fd/N, /dev/fd/N) that still has a name is a file on disk:
// runc re-executes its own binary that way.
func fileless(ev *events.Event) string {
	exe := ev.Filename[:ev.FilenameLen]
	if len(exe) == 0 { // a snapshot: no exec to name
		switch {
		case ev.ExeMemfd:
			return "runs a memfd, a file only in memory"
		case ev.ExeUnlinked:
			return "runs a file deleted or never named"
		}
		return ""
	}
	switch {
	case ev.ExeMemfd:
		return fmt.Sprintf("executed a memfd, a file only in memory (%s)", exe)
	case ev.ExeUnlinked && byFD(exe):
		return fmt.Sprintf("executed %s, a file deleted or never named", exe)
	case ev.ExeUnlinked:
		return fmt.Sprintf("executed a deleted file (%s)", exe)
	}
	return ""
}

// byFD reports whether path names an open file descriptor: /dev/fd/N (the
// kernel's name for execveat(fd, "", AT_EMPTY_PATH), as fexecve calls it),
// /proc/self/fd/N or /proc/PID/fd/N.
func byFD(path []byte) bool {
	rest, ok := bytes.CutPrefix(path, []byte("/dev/fd/"))
	if !ok {
		if rest, ok = bytes.CutPrefix(path, []byte("/proc/")); !ok {
			return false
		}
		pid, after, found := bytes.Cut(rest, []byte("/fd/"))
		if !found || !(string(pid) == "self" || string(pid) == "thread-self" || digits(pid)) {
			return false
		}
		rest = after
	}
	fd, _, _ := bytes.Cut(rest, []byte("/"))
	return digits(fd)
}

func digits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// privilegeGain: the subject's privileges grew beyond what it held before:
// a set-user-ID or file-capability exec, setuid by a process whose IDs
// were none of them root. Taking back what it held (a saved UID of 0, a
// permitted capability made effective) is not a gain; nor are
// capabilities in a user namespace it just made, which count only there
// (new-userns-root).
func privilegeGain(ev *events.Event, f *Facts) string {
	c, b := &ev.Cred, f.Before
	if b != nil && b.Known {
		what := "at exec of " + string(ev.Filename[:ev.FilenameLen])
		if ev.Type == events.TypeCred {
			what = "by " + events.SyscallName(ev.Syscall)
		}
		if c.EUID == 0 && b.UID != 0 && b.EUID != 0 && b.SUID != 0 {
			return fmt.Sprintf("effective uid became 0 (it was %d) %s", b.EUID, what)
		}
		sameUserNS := c.UserLevels == b.UserLevels && (c.UserLevels == 0 || c.UserNS[c.UserLevels-1] == b.UserNS[b.UserLevels-1])
		if grown := c.Caps[events.CapPrm] &^ b.Caps[events.CapPrm]; grown != 0 && sameUserNS {
			return fmt.Sprintf("permitted capabilities grew %s: +%s", what, capNames(grown))
		}
	}
	return ""
}

// unguardedAdmin: a program runs in a container, in a pid namespace below
// the host's, holding cap_sys_admin over the host's user namespace, with
// no_new_privs unset, so that an exec could add more. Judged when a
// program starts (exec, or a snapshot), not at each credential change:
// runc's init holds every capability for the moment before it drops to the
// container's set and runs its command, and runc's first stage runs in the
// container's cgroup before any of it is in the container's namespace.
func unguardedAdmin(ev *events.Event, f *Facts) string {
	const capSysAdmin = 21
	c := &ev.Cred
	if ev.Type == events.TypeCred || f.Container == nil || ev.Levels < 2 || c.UserLevels > 1 ||
		c.Caps[events.CapEff]&(1<<capSysAdmin) == 0 || c.NoNewPrivs {
		return ""
	}
	return fmt.Sprintf("holds cap_sys_admin in container %s with no_new_privs unset", f.Container.Label())
}

func capNames(set uint64) string {
	var names []string
	for set != 0 {
		n := bits.TrailingZeros64(set)
		set &^= 1 << n
		names = append(names, events.CapName(n))
	}
	return strings.Join(names, ",")
}

// userNSRoot: a process in a container is root in a user namespace below
// the one it had, one it made (unshare -U -r): root there holds every
// capability over what that namespace owns.
func userNSRoot(ev *events.Event, f *Facts) string {
	c, b := &ev.Cred, f.Before
	if f.Container == nil || b == nil || !b.Known || c.UserLevels <= b.UserLevels || c.UserLevels == 0 {
		return ""
	}
	own := c.UserLevels - 1
	if c.NSUID[own] != 0 {
		return ""
	}
	return fmt.Sprintf("uid 0 in user:[%d], a user namespace below its container %s's (uid %d on the host)", c.UserNS[own], f.Container.Label(), c.EUID)
}

// nsEscape: a process in a container called setns into a namespace that
// is the host's or another container's, or had setns refused.
func nsEscape(ev *events.Event, f *Facts) string {
	if f.Container == nil {
		return ""
	}
	if ev.Ret < 0 {
		return fmt.Sprintf("setns from inside container %s failed (errno %d)", f.Container.Label(), -ev.Ret)
	}
	for k, name := range events.NSNames {
		to := ev.NS[k]
		if to == 0 || to == ev.OldNS[k] {
			continue
		}
		if to == f.HostNS[k] {
			return fmt.Sprintf("setns from inside container %s into the host's %s namespace (%s:[%d])", f.Container.Label(), name, name, to)
		}
		if f.NSContainer == nil {
			continue
		}
		if other := f.NSContainer(k, to); other != nil {
			return fmt.Sprintf("setns from inside container %s into container %s's %s namespace (%s:[%d])", f.Container.Label(), other.Label(), name, name, to)
		}
	}
	return ""
}
