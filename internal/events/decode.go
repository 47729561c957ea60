package events

import (
	"encoding/binary"
	"fmt"
)

// RecordLen returns how long the proc record whose first OffProcArgs bytes
// are head is: proc records are as long as their argv.
func RecordLen(head []byte) int {
	return OffProcArgs + min(int(ne.Uint32(head[OffProcArgsLen:])), ArgsLen)
}

// Record flags (NSPT_F_*).
const (
	flagThread        = 0x1
	flagArgsTruncated = 0x2
	flagZombie        = 0x4
	flagArgsUnread    = 0x8
	flagExeUnlinked   = 0x10
	flagExeMemfd      = 0x20
	flagNoCred        = 0x40 // only UID and GID were read: a fork's child has its parent's
)

// Decoder turns kernel records into Events.
type Decoder struct {
	// BootToUnix is added to the kernel's CLOCK_BOOTTIME timestamps to make
	// them Unix time.
	BootToUnix int64
	// Cgroups, when set, names the cgroup IDs records carry.
	Cgroups CgroupResolver
	// LSM, when set, copies process pid's security-module label into dst
	// and returns its length, for exec, proc and cred records: the kernel
	// side records none.
	LSM func(pid uint32, dst []byte) int
}

// CgroupResolver names the cgroup a kernel cgroup ID stands for.
type CgroupResolver interface {
	Cgroup(id uint64) *Cgroup
}

// CgroupLearner is a CgroupResolver told of each cgroup made: its ID, its
// hierarchy's ID (0: cgroup v2), the maker's cgroup namespace (the path is
// relative to its root) and its path.
type CgroupLearner interface {
	Made(id uint64, hierarchy, cgroupNS uint32, path string)
}

// recordCgroupMkdir is NSPT_CGROUP_MKDIR: a cgroup made, which is no
// process's event.
const recordCgroupMkdir = 12

// Learn takes a record that is not a process's event, and reports whether
// raw was one: a cgroup made, which it tells the cgroup resolver of, if
// that learns (CgroupLearner).
func (d *Decoder) Learn(raw []byte) bool {
	if len(raw) < OffType+4 || ne.Uint32(raw[OffType:]) != recordCgroupMkdir {
		return false
	}
	l, ok := d.Cgroups.(CgroupLearner)
	if !ok || len(raw) < CgroupRecordSize {
		return true
	}
	n := min(int(ne.Uint32(raw[OffCgroupPathLen:])), CgroupRecordSize-OffCgroupPath)
	l.Made(ne.Uint64(raw[OffCgroupMadeID:]), ne.Uint32(raw[OffCgroupRoot:]), ne.Uint32(raw[OffCgroupNS:]),
		string(raw[OffCgroupPath:OffCgroupPath+n]))
	return true
}

var ne = binary.NativeEndian

// Decode fills ev from one ring-buffer record. It does not allocate.
func (d *Decoder) Decode(raw []byte, ev *Event) error {
	if len(raw) < RecordSize {
		return fmt.Errorf("record of %d bytes is shorter than the %d-byte header", len(raw), RecordSize)
	}
	typ := Type(ne.Uint32(raw[OffType:]))
	if (typ < TypeFork || typ > TypeUnshare) && typ != TypeProc && typ != TypeRename && typ != TypeSignal && typ != TypeCred {
		return fmt.Errorf("record has unknown type %d", typ)
	}
	levels := int(ne.Uint32(raw[OffLevels:]))
	if levels < 1 || levels > MaxLevels {
		return fmt.Errorf("record has %d pid levels, want 1 to %d", levels, MaxLevels)
	}
	flags := ne.Uint32(raw[OffFlags:])

	ev.Time = int64(ne.Uint64(raw[OffKtime:])) + d.BootToUnix
	ev.Type = typ
	ev.Thread = flags&flagThread != 0
	ev.PID = ne.Uint32(raw[OffPID:])
	ev.TID = ne.Uint32(raw[OffTID:])
	ev.PPID = ne.Uint32(raw[OffPPID:])
	ev.UID = ne.Uint32(raw[OffUID:])
	ev.GID = ne.Uint32(raw[OffGID:])
	ev.Levels = levels
	for i := 0; i < levels; i++ {
		ev.NSPid[i] = ne.Uint32(raw[OffNSPid+4*i:])
		ev.PidNS[i] = ne.Uint32(raw[OffPidNS+4*i:])
		ev.NSPPid[i] = ne.Uint32(raw[OffNSPPid+4*i:])
	}
	for k := range ev.NS {
		ev.NS[k] = ne.Uint32(raw[OffNS+4*k:])
		ev.OldNS[k] = ne.Uint32(raw[OffOldNS+4*k:])
	}
	ev.CommLen = uint8(cstrlen(raw[OffComm : OffComm+CommLen]))
	copy(ev.Comm[:], raw[OffComm:OffComm+int(ev.CommLen)])
	ev.ExitStatus = ne.Uint32(raw[OffExitStatus:])
	ev.Ret = int64(ne.Uint64(raw[OffRet:]))
	ev.NSArg = ne.Uint64(raw[OffArg:])
	ev.OldTID = ne.Uint32(raw[OffOldTID:])
	ev.Reaper = ne.Uint32(raw[OffReaper:])
	ev.StartBoot = ne.Uint64(raw[OffStart:])
	ev.ParentStartBoot = ne.Uint64(raw[OffPStart:])
	ev.CgroupID = ne.Uint64(raw[OffCgroupID:])
	ev.Cred.Known = false
	if flags&flagNoCred == 0 {
		decodeCred(raw[OffCred:], &ev.Cred)
	}
	if d.LSM != nil && (typ == TypeExec || typ == TypeProc || typ == TypeCred) {
		ev.Cred.LSMLen = uint8(d.LSM(ev.PID, ev.Cred.LSM[:]))
	}
	ev.Cgroup = nil
	if d.Cgroups != nil && ev.CgroupID != 0 {
		ev.Cgroup = d.Cgroups.Cgroup(ev.CgroupID)
	}
	ev.OutsideInitCgroup = false
	ev.Start = 0
	if ev.StartBoot != 0 {
		ev.Start = int64(ev.StartBoot) + d.BootToUnix
	}
	ev.Count, ev.NAncestors = 0, 0
	ev.FilenameLen, ev.ArgsLen, ev.ArgsTruncated, ev.OldCommLen, ev.Zombie = 0, 0, false, 0, false
	ev.ExeUnlinked, ev.ExeMemfd, ev.Findings = false, false, ev.Findings[:0]

	return decodeTail(raw, typ, flags, ev)
}

// decodeTail reads what follows the header in a record of type typ.
func decodeTail(raw []byte, typ Type, flags uint32, ev *Event) error {
	switch typ {
	case TypeProc:
		if len(raw) < OffProcArgs || len(raw) < RecordLen(raw) {
			return fmt.Errorf("proc record of %d bytes is shorter than its argv", len(raw))
		}
		ev.ArgsLen = uint16(copy(ev.Args[:], raw[OffProcArgs:RecordLen(raw)]))
		ev.ArgsTruncated = flags&flagArgsTruncated != 0
		ev.Zombie = flags&flagZombie != 0
		ev.ExeUnlinked = flags&flagExeUnlinked != 0
		ev.ExeMemfd = flags&flagExeMemfd != 0
	case TypeSignal:
		if len(raw) < SignalRecordSize {
			return fmt.Errorf("signal record of %d bytes is shorter than %d", len(raw), SignalRecordSize)
		}
		decodeSender(raw[OffSender:], &ev.Sig)
		ev.Sig.Number = ne.Uint32(raw[OffSig:])
		ev.Sig.Result = int32(ne.Uint32(raw[OffSigResult:]))
	case TypeCred:
		if len(raw) < CredRecordSize {
			return fmt.Errorf("cred record of %d bytes is shorter than %d", len(raw), CredRecordSize)
		}
		decodeIDs(raw[OffOldIDs:], &ev.OldIDs)
		ev.Syscall = int32(ne.Uint32(raw[OffSyscall:]))
	case TypeRename:
		if len(raw) < RenameRecordSize {
			return fmt.Errorf("rename record of %d bytes is shorter than %d", len(raw), RenameRecordSize)
		}
		ev.OldCommLen = uint8(cstrlen(raw[OffOldComm : OffOldComm+CommLen]))
		copy(ev.OldComm[:], raw[OffOldComm:OffOldComm+int(ev.OldCommLen)])
	case TypeExec:
		if len(raw) < ExecRecordSize {
			return fmt.Errorf("exec record of %d bytes is shorter than %d", len(raw), ExecRecordSize)
		}
		fl := min(int(ne.Uint32(raw[OffFilenameLen:])), FilenameLen)
		al := min(int(ne.Uint32(raw[OffArgsLen:])), ArgsLen)
		ev.FilenameLen = uint16(copy(ev.Filename[:], raw[OffFilename:OffFilename+fl]))
		ev.ArgsLen = uint16(copy(ev.Args[:], raw[OffArgs:OffArgs+al]))
		ev.ArgsTruncated = flags&flagArgsTruncated != 0
		ev.ExeUnlinked = flags&flagExeUnlinked != 0
		ev.ExeMemfd = flags&flagExeMemfd != 0
	}
	return nil
}

// decodeSender reads a signal's sender from its nspt_event.
func decodeSender(raw []byte, sig *SignalInfo) {
	s := &sig.Sender
	s.PID = ne.Uint32(raw[OffPID:])
	s.TID = ne.Uint32(raw[OffTID:])
	s.UID = ne.Uint32(raw[OffUID:])
	s.Levels = min(max(int(ne.Uint32(raw[OffLevels:])), 1), MaxLevels)
	for i := 0; i < s.Levels; i++ {
		s.NSPid[i] = ne.Uint32(raw[OffNSPid+4*i:])
		s.PidNS[i] = ne.Uint32(raw[OffPidNS+4*i:])
	}
	s.StartBoot = ne.Uint64(raw[OffStart:])
	s.CommLen = uint8(cstrlen(raw[OffComm : OffComm+CommLen]))
	copy(s.Comm[:], raw[OffComm:OffComm+int(s.CommLen)])
}

func cstrlen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}
