package events

import (
	"bytes"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"unsafe"
)

// IDs are what credential system calls change: the user and group IDs in
// the host's user namespace, the capability sets, securebits, the seccomp
// mode and no_new_privs, as /proc/PID/status shows them.
type IDs struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Caps                   [CapSets]uint64 // indexed by CapEff, CapPrm, ...
	Securebits             uint32
	Seccomp                SeccompMode
	NoNewPrivs             bool
}

// Cred is a process's credentials: its IDs, and its effective UID and GID
// as each user namespace from the host's down to its own sees them.
type Cred struct {
	IDs
	// Known: the credentials were reported. A recording's fork and exit
	// lines carry none: the process has its parent's, or its last exec's.
	Known bool
	// UserLevels is how many entries of UserNS, NSUID and NSGID are valid:
	// the host's user namespace first, the process's own last.
	UserLevels   int
	UserNS       [MaxUserLevels]uint32
	NSUID, NSGID [MaxUserLevels]uint32 // UnmappedID, UnreadID where not known
	// LSM is the process's AppArmor or SELinux label (/proc/PID/attr/current),
	// when a security module sets one; read by user space, bounded.
	LSMLen uint8
	LSM    [MaxLSM]byte
}

// MaxLSM bounds an LSM label.
const MaxLSM = 128

// IDs that a user namespace level does not hold.
const (
	// UnmappedID: the namespace's map has no range for the ID; the kernel
	// shows the overflow ID (65534, nobody) there.
	UnmappedID = 0xffffffff
	// UnreadID: the map has more than five ranges, which the BPF build for
	// kernels before 5.17 does not search.
	UnreadID = 0xfffffffe
)

// Capability sets, in the order of Cred.Caps and of the JSON keys.
const (
	CapEff = iota
	CapPrm
	CapInh
	CapBnd
	CapAmb
	CapSets
)

// CapSetNames are the sets' names: "cap_" and these are the JSON keys.
var CapSetNames = [CapSets]string{"eff", "prm", "inh", "bnd", "amb"}

// capNames are the capabilities of include/uapi/linux/capability.h, by
// number. A bit past them is named "cap_N".
var capNames = [...]string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
	"cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
	"cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock",
	"cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace",
	"cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice", "cap_sys_resource",
	"cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease", "cap_audit_write",
	"cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
	"cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
	"cap_checkpoint_restore",
}

// CapName returns capability n's name, "cap_chown" for 0.
func CapName(n int) string {
	if n >= 0 && n < len(capNames) {
		return capNames[n]
	}
	return "cap_" + strconv.Itoa(n)
}

// ParseCap reads a capability name, "cap_chown" or "chown" (any case), or
// "cap_N".
func ParseCap(name string) (int, error) {
	s := strings.ToLower(name)
	if !strings.HasPrefix(s, "cap_") {
		s = "cap_" + s
	}
	for i, n := range capNames {
		if n == s {
			return i, nil
		}
	}
	if n, err := strconv.Atoi(s[4:]); err == nil && n >= 0 && n < 64 {
		return n, nil
	}
	return 0, fmt.Errorf("unknown capability %q", name)
}

// AllCaps is the set of every capability this build knows by name.
const AllCaps = uint64(1)<<len(capNames) - 1

// SeccompMode is a process's seccomp mode (SECCOMP_MODE_*).
type SeccompMode uint8

var seccompNames = [...]string{"disabled", "strict", "filter"}

func (m SeccompMode) String() string {
	if int(m) < len(seccompNames) {
		return seccompNames[m]
	}
	return "mode " + strconv.Itoa(int(m))
}

func parseSeccomp(s []byte) SeccompMode {
	for i, n := range seccompNames {
		if string(s) == n {
			return SeccompMode(i)
		}
	}
	return SeccompMode(len(seccompNames))
}

// LSMString returns the LSM label as a string.
func (c *Cred) LSMString() string { return string(c.LSM[:c.LSMLen]) }

// SetLSM stores label, trimmed of the newline /proc adds and bounded.
func (c *Cred) SetLSM(label []byte) {
	label = bytes.TrimRight(label, "\n\x00")
	c.LSMLen = uint8(copy(c.LSM[:], truncUTF8(label, MaxLSM)))
}

// Level returns the index of user namespace ns in the levels, or -1.
func (c *Cred) Level(ns uint32) int {
	for i := 0; i < c.UserLevels; i++ {
		if c.UserNS[i] == ns {
			return i
		}
	}
	return -1
}

// decodeIDs reads a struct nspt_ids, at RawIDs' offsets.
func decodeIDs(raw []byte, ids *IDs) {
	u := func(off uintptr) uint32 { return ne.Uint32(raw[off:]) }
	var r RawIDs
	ids.UID, ids.EUID = u(unsafe.Offsetof(r.Uid)), u(unsafe.Offsetof(r.Euid))
	ids.SUID, ids.FSUID = u(unsafe.Offsetof(r.Suid)), u(unsafe.Offsetof(r.Fsuid))
	ids.GID, ids.EGID = u(unsafe.Offsetof(r.Gid)), u(unsafe.Offsetof(r.Egid))
	ids.SGID, ids.FSGID = u(unsafe.Offsetof(r.Sgid)), u(unsafe.Offsetof(r.Fsgid))
	ids.Caps[CapInh] = ne.Uint64(raw[unsafe.Offsetof(r.CapInheritable):])
	ids.Caps[CapPrm] = ne.Uint64(raw[unsafe.Offsetof(r.CapPermitted):])
	ids.Caps[CapEff] = ne.Uint64(raw[unsafe.Offsetof(r.CapEffective):])
	ids.Caps[CapBnd] = ne.Uint64(raw[unsafe.Offsetof(r.CapBset):])
	ids.Caps[CapAmb] = ne.Uint64(raw[unsafe.Offsetof(r.CapAmbient):])
	ids.Securebits = u(unsafe.Offsetof(r.Securebits))
	ids.Seccomp = SeccompMode(min(u(unsafe.Offsetof(r.Seccomp)), 255))
	ids.NoNewPrivs = u(unsafe.Offsetof(r.NoNewPrivs)) != 0
}

// decodeCred reads a struct nspt_cred.
func decodeCred(raw []byte, c *Cred) {
	decodeIDs(raw, &c.IDs)
	c.Known = true
	c.LSMLen = 0
	c.UserLevels = min(int(ne.Uint32(raw[OffUserLevels:])), MaxUserLevels)
	for i := 0; i < c.UserLevels; i++ {
		c.UserNS[i] = ne.Uint32(raw[OffUserNS+4*i:])
		c.NSUID[i] = ne.Uint32(raw[OffNSUID+4*i:])
		c.NSGID[i] = ne.Uint32(raw[OffNSGID+4*i:])
	}
}

// idFields names the IDs' numeric fields for JSON, with their values.
func (ids *IDs) idFields() [8]struct {
	name string
	v    uint32
} {
	return [8]struct {
		name string
		v    uint32
	}{{"uid", ids.UID}, {"euid", ids.EUID}, {"suid", ids.SUID}, {"fsuid", ids.FSUID},
		{"gid", ids.GID}, {"egid", ids.EGID}, {"sgid", ids.SGID}, {"fsgid", ids.FSGID}}
}

// idField returns the ID JSON names name; name must be one of idFields'.
func (ids *IDs) idField(name string) *uint32 {
	switch name {
	case "uid":
		return &ids.UID
	case "euid":
		return &ids.EUID
	case "suid":
		return &ids.SUID
	case "fsuid":
		return &ids.FSUID
	case "gid":
		return &ids.GID
	case "egid":
		return &ids.EGID
	case "sgid":
		return &ids.SGID
	}
	return &ids.FSGID
}

// appendIDs appends the IDs' members (without braces) to a JSON object.
func appendIDs(buf []byte, ids *IDs) []byte {
	for i, f := range ids.idFields() {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, f.name...)
		buf = append(buf, `":`...)
		buf = strconv.AppendUint(buf, uint64(f.v), 10)
	}
	for set, name := range CapSetNames {
		buf = append(buf, `,"cap_`...)
		buf = append(buf, name...)
		buf = append(buf, `":`...)
		buf = appendCaps(buf, ids.Caps[set])
	}
	buf = append(buf, `,"securebits":`...)
	buf = strconv.AppendUint(buf, uint64(ids.Securebits), 10)
	buf = append(buf, `,"seccomp":"`...)
	buf = append(buf, ids.Seccomp.String()...)
	buf = append(buf, `","no_new_privs":`...)
	return strconv.AppendBool(buf, ids.NoNewPrivs)
}

// appendCred appends the `cred` object, with a leading comma.
func appendCred(buf []byte, c *Cred) []byte {
	buf = append(buf, `,"cred":{`...)
	buf = appendIDs(buf, &c.IDs)
	if c.LSMLen > 0 {
		buf = append(buf, `,"lsm":`...)
		buf = appendString(buf, c.LSM[:c.LSMLen])
	}
	buf = append(buf, `,"userns":[`...)
	for i := 0; i < c.UserLevels; i++ {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"ns":`...)
		buf = strconv.AppendUint(buf, uint64(c.UserNS[i]), 10)
		buf = appendLevelID(buf, `,"uid":`, c.NSUID[i])
		buf = appendLevelID(buf, `,"gid":`, c.NSGID[i])
		buf = append(buf, '}')
	}
	return append(buf, "]}"...)
}

// appendLevelID appends one level's ID: null when unmapped, nothing when
// not read.
func appendLevelID(buf []byte, key string, id uint32) []byte {
	switch id {
	case UnreadID:
		return buf
	case UnmappedID:
		buf = append(buf, key...)
		return append(buf, "null"...)
	}
	buf = append(buf, key...)
	return strconv.AppendUint(buf, uint64(id), 10)
}

// appendCaps appends a capability set as a JSON array of names.
func appendCaps(buf []byte, set uint64) []byte {
	buf = append(buf, '[')
	for first := true; set != 0; first = false {
		n := bits.TrailingZeros64(set)
		set &^= 1 << n
		if !first {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, CapName(n)...)
		buf = append(buf, '"')
	}
	return append(buf, ']')
}

// ChangedIDs names the fields that differ between a and b, in JSON order.
func ChangedIDs(a, b *IDs) []string {
	var changed []string
	af, bf := a.idFields(), b.idFields()
	for i := range af {
		if af[i].v != bf[i].v {
			changed = append(changed, af[i].name)
		}
	}
	for set, name := range CapSetNames {
		if a.Caps[set] != b.Caps[set] {
			changed = append(changed, "cap_"+name)
		}
	}
	if a.Securebits != b.Securebits {
		changed = append(changed, "securebits")
	}
	if a.Seccomp != b.Seccomp {
		changed = append(changed, "seccomp")
	}
	if a.NoNewPrivs != b.NoNewPrivs {
		changed = append(changed, "no_new_privs")
	}
	return changed
}

// appendCredChange appends a cred event's own fields: the system call, the
// IDs before it and the names of what changed.
func appendCredChange(buf []byte, ev *Event) []byte {
	buf = append(buf, `,"syscall":`...)
	buf = appendString(buf, []byte(SyscallName(ev.Syscall)))
	buf = append(buf, `,"old_cred":{`...)
	buf = appendIDs(buf, &ev.OldIDs)
	buf = append(buf, `},"cred_changed":[`...)
	for i, name := range ChangedIDs(&ev.OldIDs, &ev.Cred.IDs) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, name...)
		buf = append(buf, '"')
	}
	return append(buf, ']')
}

// parseIDField reads one member of a `cred` or `old_cred` object into ids;
// false when key is none of the IDs' members.
func (p *parser) parseIDField(key []byte, ids *IDs) (bool, error) {
	var err error
	switch k := string(key); k {
	case "uid", "euid", "suid", "fsuid", "gid", "egid", "sgid", "fsgid":
		*ids.idField(k), err = p.uint32()
	case "cap_eff", "cap_prm", "cap_inh", "cap_bnd", "cap_amb":
		set := 0
		for i, n := range CapSetNames {
			if k[4:] == n {
				set = i
			}
		}
		ids.Caps[set] = 0
		err = p.array(func(int) error {
			s, err := p.string()
			if err != nil {
				return err
			}
			n, err := ParseCap(string(s))
			if err != nil {
				return err
			}
			ids.Caps[set] |= 1 << n
			return nil
		})
	case "securebits":
		ids.Securebits, err = p.uint32()
	case "seccomp":
		var s []byte
		if s, err = p.string(); err == nil {
			ids.Seccomp = parseSeccomp(s)
		}
	case "no_new_privs":
		ids.NoNewPrivs, err = p.bool()
	default:
		return false, nil
	}
	return true, err
}

// parseCred reads a `cred` object.
func (p *parser) parseCred(c *Cred) error {
	c.Known = true
	return p.object(func(key []byte) error {
		if ok, err := p.parseIDField(key, &c.IDs); ok {
			return err
		}
		switch string(key) {
		case "lsm":
			s, err := p.string()
			if err == nil {
				c.SetLSM(p.text(s))
			}
			return err
		case "userns":
			return p.array(func(i int) error {
				if i >= MaxUserLevels {
					return fmt.Errorf("%w: more than %d user namespace levels", errSyntax, MaxUserLevels)
				}
				c.UserLevels = i + 1
				c.NSUID[i], c.NSGID[i] = UnreadID, UnreadID
				return p.object(func(k []byte) error {
					switch string(k) {
					case "ns":
						v, err := p.uint32()
						c.UserNS[i] = v
						return err
					case "uid":
						return p.levelID(&c.NSUID[i])
					case "gid":
						return p.levelID(&c.NSGID[i])
					}
					return p.skip()
				})
			})
		}
		return p.skip()
	})
}

// levelID reads a level's ID: a number, or null for unmapped.
func (p *parser) levelID(dst *uint32) error {
	p.ws()
	if hasPrefix(p.b[p.i:], "null") {
		p.i += 4
		*dst = UnmappedID
		return nil
	}
	v, err := p.uint32()
	*dst = v
	return err
}

// parseOldIDs reads an `old_cred` object.
func (p *parser) parseOldIDs(ids *IDs) error {
	return p.object(func(key []byte) error {
		if ok, err := p.parseIDField(key, ids); ok {
			return err
		}
		return p.skip()
	})
}
