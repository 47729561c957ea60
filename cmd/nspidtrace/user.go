package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/users"
)

// userLine names p's effective user for a terminal, live only:
//
//	uid 0 (root)
//	uid 33 (www-data; xfs in its root)              another mount namespace
//	uid 100000 on the host; 0 (root) in its user namespace
//
// Host names come from the host's /etc/passwd; names inside come from the
// passwd file of p's own root (/proc/PID/root), read inside that root and
// bounded, since p's users wrote it. "" when p cannot be read now (a
// recording, an exited process, a PID taken by another process since).
func (q *query) userLine(p *pidmap.Proc) string {
	if q.fromFile || p.Zombie || p.Exited || q.own == nil {
		return ""
	}
	level := p.LevelOf(q.own)
	if level < 0 {
		return ""
	}
	pid := int(p.NSPid(level))
	if !sameProcess(pid, p) {
		return ""
	}
	var ev events.Event
	p.Fill(&ev, 0)
	ownUser, _ := procfs.OwnNS(procfs.ProcRoot, "user")
	ownMnt, _ := procfs.OwnNS(procfs.ProcRoot, "mnt")
	hostName := lookup("/", p.UID)
	root := fmt.Sprintf("%s/%d/root", procfs.ProcRoot, pid)

	if ev.NS[events.NSUser] == 0 || ev.NS[events.NSUser] == ownUser {
		line := "uid " + strconv.FormatUint(uint64(p.UID), 10)
		var names []string
		if hostName != "" {
			names = append(names, hostName)
		}
		if ev.NS[events.NSMnt] != 0 && ev.NS[events.NSMnt] != ownMnt {
			if inside := lookup(root, p.UID); inside != "" && inside != hostName {
				names = append(names, inside+" in its root")
			}
		}
		if len(names) > 0 {
			line += " (" + strings.Join(names, "; ") + ")"
		}
		return line
	}

	// Its own user namespace: the ID it sees is the host ID mapped back.
	line := "uid " + strconv.FormatUint(uint64(p.UID), 10)
	if hostName != "" {
		line += " (" + hostName + ")"
	}
	line += " on the host; "
	ranges, err := users.ReadUIDMap(procfs.ProcRoot, pid)
	if err != nil {
		return line + "? in its user namespace"
	}
	inside, err := users.Inside(ranges, p.UID)
	if err != nil {
		return line + "unmapped in its user namespace (it sees the overflow ID, nobody)"
	}
	line += strconv.FormatUint(uint64(inside), 10)
	if name := lookup(root, inside); name != "" {
		line += " (" + name + ")"
	}
	return line + " in its user namespace"
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

// sameProcess reports whether /proc/PID is still p: the kernel counts
// start times there in clock ticks (USER_HZ, 100 a second), p's start in
// nanoseconds. Without a known start, the PID is taken as it is.
func sameProcess(pid int, p *pidmap.Proc) bool {
	if p.Start == 0 {
		return true
	}
	ticks, err := procfs.StartTicks(procfs.ProcRoot, pid)
	return err == nil && ticks == p.Start/10_000_000
}
