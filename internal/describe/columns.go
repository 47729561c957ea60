// Package describe says what a process is, in words for a terminal: the
// extra columns of <pid> and tree (--columns, -o wide: who it runs as, what
// it may do, where its network is, as psgo's descriptors and ps -o show
// them), its user at every user-namespace level, its container, its argv.
// What a process chose (comm, argv, names in its root) is escaped.
package describe

import (
	"fmt"
	"math/bits"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/users"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// Column is one --columns name: its title and its value for a process.
type Column struct {
	Name, Title, About string
	value              func(c *Context, p *pidmap.Proc) string
}

// Value is the column's cell for p: escaped for a terminal and never
// empty ("-" when unknown), so a tab never closes a column early.
func (col Column) Value(c *Context, p *pidmap.Proc) string { return col.value(c, p) }

// Columns are every column, in the order -o wide shows them.
var Columns = []Column{
	{"user", "USER", "the effective user as the process's own user namespace sees it, named from its root's /etc/passwd", (*Context).user},
	{"huser", "HUSER", "the effective user on the host, named from the host's /etc/passwd", (*Context).hostUser},
	{"caps", "CAPS", "the effective capabilities: all, none, a list, or all-LIST for all but those", (*Context).caps},
	{"seccomp", "SECCOMP", "the seccomp mode (disabled, strict, filter), +nnp with no_new_privs", (*Context).seccomp},
	{"lsm", "LSM", "the AppArmor or SELinux label, where a module sets one", (*Context).lsm},
	{"netns", "NETNS", "the network namespace: its ip netns or runtime name, its container, or net:[INODE]", (*Context).netns},
	{"state", "STATE", "the process state of /proc/PID/stat (live), Z for a zombie", (*Context).state},
	{"flags", "FLAGS", "its findings (docs/findings.md): masquerade, fileless, privilege-gain, entered, ...", (*Context).flags},
	{"args", "ARGS", "the arguments (tree: after each process, as -a)", (*Context).args},
}

// ColumnNames lists the column names, for --help.
func ColumnNames() string {
	names := make([]string, len(Columns))
	for i, c := range Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ",")
}

// ParseColumns returns the columns of list (--columns), or every one
// (-o wide).
func ParseColumns(list string, wide bool) ([]Column, error) {
	if wide {
		return Columns, nil
	}
	if list == "" {
		return nil, nil
	}
	var cols []Column
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(Columns, func(c Column) bool { return c.Name == name })
		if i < 0 {
			return nil, fault.Usagef("--columns: unknown column %q (want %s)", name, ColumnNames())
		}
		if !slices.ContainsFunc(cols, func(c Column) bool { return c.Name == name }) {
			cols = append(cols, Columns[i])
		}
	}
	return cols, nil
}

// Context holds what the columns look up once for many processes.
type Context struct {
	v     *view.View
	live  bool
	Full  uint64 // every capability this kernel has
	host  users.Names
	roots map[uint32]users.Names // passwd of each mount namespace's root
	net   *netnsNamer

	scratch []events.Finding
}

// NewContext prepares the columns of v's processes.
func NewContext(v *view.View) *Context {
	c := &Context{v: v, live: !v.FromFile, Full: events.AllCaps, roots: map[uint32]users.Names{}}
	if c.live {
		if data, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
			if last, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && last >= 0 && last < 63 {
				c.Full = 1<<(last+1) - 1
			}
		}
		c.host, _ = users.Read("/")
	}
	c.net = newNetnsNamer(v)
	return c
}

// livePID is p's PID as /proc shows it, 0 when /proc cannot (a recording,
// an exited process, a PID since taken by another).
func (c *Context) livePID(p *pidmap.Proc) int {
	if !c.live || p.Exited || c.v.Own == nil {
		return 0
	}
	level := p.LevelOf(c.v.Own)
	if level < 0 {
		return 0
	}
	pid := int(p.NSPid(level))
	if !stillLive(pid, p) {
		return 0
	}
	return pid
}

// ownLevelID is p's effective UID as its own user namespace sees it.
func ownLevelID(cred *events.Cred) (uint32, bool) {
	if cred == nil || cred.UserLevels == 0 {
		return 0, false
	}
	id := cred.NSUID[cred.UserLevels-1]
	return id, id != events.UnmappedID && id != events.UnreadID
}

func (c *Context) user(p *pidmap.Proc) string {
	cred := p.Cred()
	uid, ok := ownLevelID(cred)
	if !ok {
		if cred != nil && cred.UserLevels > 0 && cred.NSUID[cred.UserLevels-1] == events.UnmappedID {
			return "nobody(unmapped)"
		}
		return c.hostUser(p)
	}
	if name := c.rootNames(p)[uid]; name != "" {
		return termsafe.String(name)
	}
	if cred.UserLevels == 1 && c.host[uid] != "" {
		return termsafe.String(c.host[uid])
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// rootNames are the user names of p's root filesystem, read once per mount
// namespace, inside the root and bounded (users.Read).
func (c *Context) rootNames(p *pidmap.Proc) users.Names {
	mnt := p.Namespaces()[events.NSMnt]
	if names, ok := c.roots[mnt]; ok {
		return names
	}
	var names users.Names
	if pid := c.livePID(p); pid != 0 {
		names, _ = users.Read(fmt.Sprintf("%s/%d/root", procfs.ProcRoot, pid))
	}
	c.roots[mnt] = names
	return names
}

func (c *Context) hostUser(p *pidmap.Proc) string {
	if name := c.host[p.UID]; name != "" {
		return termsafe.String(name)
	}
	return strconv.FormatUint(uint64(p.UID), 10)
}

func (c *Context) caps(p *pidmap.Proc) string {
	if cred := p.Cred(); cred != nil {
		return CapsCompact(cred.Caps[events.CapEff], c.Full)
	}
	return "-"
}

// CapsCompact writes a capability set briefly: "all", "none", the names
// without "cap_" (chown,kill), or for a set with most of them, "all-" and
// those it lacks (all-sys_admin,net_admin).
func CapsCompact(set, full uint64) string {
	switch {
	case set == 0:
		return "none"
	case set == full:
		return "all"
	case set&full == set && bits.OnesCount64(set) > bits.OnesCount64(full)/2:
		return "all-" + capList(full&^set)
	}
	return capList(set)
}

func capList(set uint64) string {
	var names []string
	for set != 0 {
		n := bits.TrailingZeros64(set)
		set &^= 1 << n
		name := events.CapName(n)
		// "cap_" is left out, but not of a bit without a name ("cap_50").
		if short := strings.TrimPrefix(name, "cap_"); strings.Trim(short, "0123456789") != "" {
			name = short
		}
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

func (c *Context) seccomp(p *pidmap.Proc) string {
	cred := p.Cred()
	if cred == nil {
		return "-"
	}
	s := cred.Seccomp.String()
	if cred.NoNewPrivs {
		s += "+nnp"
	}
	return s
}

func (c *Context) lsm(p *pidmap.Proc) string {
	if cred := p.Cred(); cred != nil && cred.LSMLen > 0 {
		return termsafe.String(cred.LSMString())
	}
	return "-"
}

func (c *Context) netns(p *pidmap.Proc) string {
	return c.net.label(p.Namespaces()[events.NSNet])
}

func (c *Context) state(p *pidmap.Proc) string {
	if p.Zombie {
		return "Z"
	}
	if pid := c.livePID(p); pid != 0 {
		if st, err := procfs.State(procfs.ProcRoot, pid); err == nil {
			return st
		}
	}
	return "-"
}

func (c *Context) flags(p *pidmap.Proc) string {
	if !p.Flagged() {
		return "-"
	}
	c.scratch = p.Findings(c.scratch)
	names := make([]string, len(c.scratch))
	for i, f := range c.scratch {
		names[i] = f.Name.String()
	}
	return strings.Join(names, ",")
}

func (c *Context) args(p *pidmap.Proc) string {
	if a := Args(p); a != "" {
		return a
	}
	return "-"
}

// CapsSummary is the caps line of <pid>: each set compact, sets of the
// same value together ("eff,prm,bnd all; inh,amb none").
func CapsSummary(cred *events.Cred, full uint64) string {
	var parts []string
	done := make([]bool, events.CapSets)
	for i := range events.CapSets {
		if done[i] {
			continue
		}
		names := []string{events.CapSetNames[i]}
		for j := i + 1; j < events.CapSets; j++ {
			if !done[j] && cred.Caps[j] == cred.Caps[i] {
				done[j] = true
				names = append(names, events.CapSetNames[j])
			}
		}
		parts = append(parts, strings.Join(names, ",")+" "+CapsCompact(cred.Caps[i], full))
	}
	return strings.Join(parts, "; ")
}
