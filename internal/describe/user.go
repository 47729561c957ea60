package describe

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/users"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// UserLine names p's effective user for a terminal, live only:
//
//	uid 0 (root)
//	uid 33 (www-data; xfs in its root)              another mount namespace
//	uid 100000 on the host; 0 (root) in its user namespace
//	uid 100000 on the host; 0 in user:[4026532176]; 0 (root) in its user namespace
//
// with one step for every user namespace between the host's and its own,
// as the kernel mapped the ID there (events.Cred). Host names come from the
// host's /etc/passwd; names inside come from the passwd file of p's own root
// (/proc/PID/root), read inside that root and bounded, since p's users
// wrote it. "" when p cannot be read now (a recording, an exited process, a
// PID taken by another process since).
func UserLine(v *view.View, p *pidmap.Proc) string {
	if v.FromFile || p.Zombie || p.Exited || v.Own == nil {
		return recordedUserLine(p)
	}
	level := p.LevelOf(v.Own)
	if level < 0 {
		return ""
	}
	pid := int(p.NSPid(level))
	if !stillLive(pid, p) {
		return ""
	}
	ns := p.Namespaces()
	ownUser, _ := procfs.OwnNS(procfs.ProcRoot, "user")
	ownMnt, _ := procfs.OwnNS(procfs.ProcRoot, "mnt")
	hostName := lookup("/", p.UID)
	root := fmt.Sprintf("%s/%d/root", procfs.ProcRoot, pid)

	if ns[events.NSUser] == 0 || ns[events.NSUser] == ownUser {
		var inRoot string
		if ns[events.NSMnt] != 0 && ns[events.NSMnt] != ownMnt {
			if name := lookup(root, p.UID); name != "" && name != hostName {
				inRoot = name + " in its root"
			}
		}
		return "uid " + withNames(p.UID, hostName, inRoot)
	}

	// Its own user namespace: the ID it sees is the host ID mapped back,
	// through every namespace between.
	line := "uid " + withNames(p.UID, hostName) + " on the host"
	cred := p.Cred()
	if cred == nil || cred.UserLevels < 2 {
		ranges, err := users.ReadUIDMap(procfs.ProcRoot, pid)
		if err != nil {
			return line + "; ? in its user namespace"
		}
		inside, err := users.Inside(ranges, p.UID)
		if err != nil {
			return line + "; " + unmappedID + " in its user namespace"
		}
		return line + "; " + withNames(inside, lookup(root, inside)) + " in its user namespace"
	}
	return line + userLevels(cred, func(uid uint32) string { return lookup(root, uid) })
}

// recordedUserLine is the user line of a process that cannot be read now
// (--from, an exited process): its IDs as the events told them, without
// names, which only the live machine's files hold.
func recordedUserLine(p *pidmap.Proc) string {
	line := "uid " + strconv.FormatUint(uint64(p.UID), 10)
	cred := p.Cred()
	if cred == nil || cred.UserLevels < 2 {
		return line
	}
	return line + " on the host" + userLevels(cred, func(uint32) string { return "" })
}

// userLevels says what the effective ID is at each level of user
// namespace below the host's, as the kernel maps it; name names it in
// the process's own.
func userLevels(cred *events.Cred, name func(uid uint32) string) string {
	var line string
	for i := 1; i < cred.UserLevels; i++ {
		own := i == cred.UserLevels-1
		var id string
		switch uid := cred.NSUID[i]; uid {
		case events.UnmappedID:
			id = unmappedID
		case events.UnreadID:
			id = "?"
		default:
			id = strconv.FormatUint(uint64(uid), 10)
			if own {
				id = withNames(uid, name(uid))
			}
		}
		if own {
			line += "; " + id + " in its user namespace"
		} else {
			line += fmt.Sprintf("; %s in user:[%d]", id, cred.UserNS[i])
		}
	}
	return line
}

// unmappedID says that an ID has no mapping in a user namespace.
const unmappedID = "unmapped (it sees the overflow ID, nobody)"

// withNames writes "33 (www-data; xfs in its root)", leaving out empty
// names, and the parentheses when all are.
func withNames(uid uint32, names ...string) string {
	line := strconv.FormatUint(uint64(uid), 10)
	names = slices.DeleteFunc(names, func(n string) bool { return n == "" })
	if len(names) > 0 {
		line += " (" + strings.Join(names, "; ") + ")"
	}
	return line
}

// lookup names uid from root's /etc/passwd, escaped for a terminal; ""
// when there is no such file or name.
func lookup(root string, uid uint32) string {
	names, err := users.Read(root)
	if err != nil {
		return ""
	}
	return termsafe.String(names[uid])
}

// stillLive reports whether /proc/PID is still p: the kernel counts
// start times there in clock ticks (USER_HZ, 100 a second), p's start in
// nanoseconds. Without a known start, the PID is taken as it is.
func stillLive(pid int, p *pidmap.Proc) bool {
	if p.Start == 0 {
		return true
	}
	ticks, err := procfs.StartTicks(procfs.ProcRoot, pid)
	return err == nil && ticks == p.Start/10_000_000
}
