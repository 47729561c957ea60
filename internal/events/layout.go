package events

import (
	"structs"
	"unsafe"
)

// The records the BPF programs write, as bpf/nspidtrace.h lays them out.
// These types are the one Go copy of that layout: the offsets Decode reads
// at and the sizes of Event's arrays are derived from them, and
// internal/loader's layout test compares them field by field (name, offset,
// size) with the types bpf2go generates from the C. Decode reads records
// with encoding/binary at these offsets; nothing casts raw bytes to them.

// RawEvent is struct nspt_event, the head of every record.
type RawEvent struct {
	_          structs.HostLayout
	KtimeNs    uint64
	Type       uint32
	Flags      uint32
	Pid        uint32
	Tid        uint32
	Ppid       uint32
	Uid        uint32
	Gid        uint32
	Levels     uint32
	Nspid      [33]uint32 // NSPT_MAX_LEVELS
	Pidns      [33]uint32
	Nsppid     [33]uint32
	Ns         [NSKinds]uint32
	Comm       [16]byte // NSPT_COMM_LEN
	ExitStatus uint32
	Ret        int64
	Arg        uint64
	OldNs      [NSKinds]uint32
	OldTid     uint32
	Reaper     uint32
	StartNs    uint64

	ParentStartNs uint64
	CgroupId      uint64
	Cred          RawCred
}

// RawIDs is struct nspt_ids: what credential system calls change.
type RawIDs struct {
	_                      structs.HostLayout
	Uid, Euid, Suid, Fsuid uint32
	Gid, Egid, Sgid, Fsgid uint32
	CapInheritable         uint64
	CapPermitted           uint64
	CapEffective           uint64
	CapBset                uint64
	CapAmbient             uint64
	Securebits, Seccomp    uint32
	NoNewPrivs, Pad        uint32
}

// RawCred is struct nspt_cred: the IDs, and the effective UID and GID at
// every level of user namespace.
type RawCred struct {
	_          structs.HostLayout
	Ids        RawIDs
	UserLevels uint32
	Userns     [34]uint32 // NSPT_MAX_USER_LEVELS
	NsUid      [34]uint32
	NsGid      [34]uint32
	Pad        uint32
}

// RawCredEvent is struct nspt_cred_event: the common record, with the
// credentials after the change, those before it and the system call.
type RawCredEvent struct {
	_       structs.HostLayout
	E       RawEvent
	Old     RawIDs
	Syscall int32
	Pad     uint32
}

// RawExecEvent is struct nspt_exec_event.
type RawExecEvent struct {
	_           structs.HostLayout
	E           RawEvent
	FilenameLen uint32
	ArgsLen     uint32
	Filename    [256]byte  // NSPT_FILENAME_LEN
	Args        [1024]byte // NSPT_ARGS_LEN
}

// RawProcEvent is struct nspt_proc_event; only the first ArgsLen bytes of
// Args are written.
type RawProcEvent struct {
	_       structs.HostLayout
	E       RawEvent
	ArgsLen uint32
	Pad     uint32
	Args    [len(RawExecEvent{}.Args)]byte
}

// RawRenameEvent is struct nspt_rename_event: the common record, with the
// new comm, and the old comm.
type RawRenameEvent struct {
	_       structs.HostLayout
	E       RawEvent
	OldComm [len(RawEvent{}.Comm)]byte
}

// RawSignalEvent is struct nspt_signal_event: the target (the subject),
// the sender, the signal and what became of it.
type RawSignalEvent struct {
	_      structs.HostLayout
	E      RawEvent
	Sender RawEvent
	Sig    uint32
	Result int32
}

// RawCgroupEvent is struct nspt_cgroup_event: a cgroup made, not an event
// of a process (Decoder.Learn takes it).
type RawCgroupEvent struct {
	_        structs.HostLayout
	KtimeNs  uint64
	Type     uint32
	Root     uint32
	Id       uint64
	CgroupNs uint32
	PathLen  uint32
	Path     [512]byte // NSPT_CGROUP_PATH_LEN
}

// MaxLevels is the number of pid-namespace levels an Event can hold: the host
// plus the kernel's 32 nested levels (MAX_PID_NS_LEVEL).
const MaxLevels = len(RawEvent{}.Nspid)

// MaxUserLevels is the number of user-namespace levels an Event can hold:
// the host's and the 33 the kernel lets nest below it.
const MaxUserLevels = len(RawCred{}.Userns)

// Sizes of the bounded byte fields.
const (
	CommLen     = len(RawEvent{}.Comm)
	FilenameLen = len(RawExecEvent{}.Filename)
	ArgsLen     = len(RawExecEvent{}.Args)
)

// Byte offsets of the records' fields, for Decode and the task iterator's reader.
const (
	OffKtime      = int(unsafe.Offsetof(RawEvent{}.KtimeNs))
	OffType       = int(unsafe.Offsetof(RawEvent{}.Type))
	OffFlags      = int(unsafe.Offsetof(RawEvent{}.Flags))
	OffPID        = int(unsafe.Offsetof(RawEvent{}.Pid))
	OffTID        = int(unsafe.Offsetof(RawEvent{}.Tid))
	OffPPID       = int(unsafe.Offsetof(RawEvent{}.Ppid))
	OffUID        = int(unsafe.Offsetof(RawEvent{}.Uid))
	OffGID        = int(unsafe.Offsetof(RawEvent{}.Gid))
	OffLevels     = int(unsafe.Offsetof(RawEvent{}.Levels))
	OffNSPid      = int(unsafe.Offsetof(RawEvent{}.Nspid))
	OffPidNS      = int(unsafe.Offsetof(RawEvent{}.Pidns))
	OffNSPPid     = int(unsafe.Offsetof(RawEvent{}.Nsppid))
	OffNS         = int(unsafe.Offsetof(RawEvent{}.Ns))
	OffComm       = int(unsafe.Offsetof(RawEvent{}.Comm))
	OffExitStatus = int(unsafe.Offsetof(RawEvent{}.ExitStatus))
	OffRet        = int(unsafe.Offsetof(RawEvent{}.Ret))
	OffArg        = int(unsafe.Offsetof(RawEvent{}.Arg))
	OffOldNS      = int(unsafe.Offsetof(RawEvent{}.OldNs))
	OffOldTID     = int(unsafe.Offsetof(RawEvent{}.OldTid))
	OffReaper     = int(unsafe.Offsetof(RawEvent{}.Reaper))
	OffStart      = int(unsafe.Offsetof(RawEvent{}.StartNs))
	OffPStart     = int(unsafe.Offsetof(RawEvent{}.ParentStartNs))
	OffCgroupID   = int(unsafe.Offsetof(RawEvent{}.CgroupId))
	OffCred       = int(unsafe.Offsetof(RawEvent{}.Cred))
	RecordSize    = int(unsafe.Sizeof(RawEvent{}))

	OffUserLevels = int(unsafe.Offsetof(RawCred{}.UserLevels))
	OffUserNS     = int(unsafe.Offsetof(RawCred{}.Userns))
	OffNSUID      = int(unsafe.Offsetof(RawCred{}.NsUid))
	OffNSGID      = int(unsafe.Offsetof(RawCred{}.NsGid))

	OffOldIDs      = int(unsafe.Offsetof(RawCredEvent{}.Old))
	OffSyscall     = int(unsafe.Offsetof(RawCredEvent{}.Syscall))
	CredRecordSize = int(unsafe.Sizeof(RawCredEvent{}))

	OffFilenameLen = int(unsafe.Offsetof(RawExecEvent{}.FilenameLen))
	OffArgsLen     = int(unsafe.Offsetof(RawExecEvent{}.ArgsLen))
	OffFilename    = int(unsafe.Offsetof(RawExecEvent{}.Filename))
	OffArgs        = int(unsafe.Offsetof(RawExecEvent{}.Args))
	ExecRecordSize = int(unsafe.Sizeof(RawExecEvent{}))

	OffProcArgsLen    = int(unsafe.Offsetof(RawProcEvent{}.ArgsLen))
	OffProcArgs       = int(unsafe.Offsetof(RawProcEvent{}.Args))
	ProcRecordMaxSize = int(unsafe.Sizeof(RawProcEvent{}))

	OffOldComm       = int(unsafe.Offsetof(RawRenameEvent{}.OldComm))
	RenameRecordSize = int(unsafe.Sizeof(RawRenameEvent{}))

	OffSender        = int(unsafe.Offsetof(RawSignalEvent{}.Sender))
	OffSig           = int(unsafe.Offsetof(RawSignalEvent{}.Sig))
	OffSigResult     = int(unsafe.Offsetof(RawSignalEvent{}.Result))
	SignalRecordSize = int(unsafe.Sizeof(RawSignalEvent{}))

	OffCgroupRoot    = int(unsafe.Offsetof(RawCgroupEvent{}.Root))
	OffCgroupMadeID  = int(unsafe.Offsetof(RawCgroupEvent{}.Id))
	OffCgroupNS      = int(unsafe.Offsetof(RawCgroupEvent{}.CgroupNs))
	OffCgroupPathLen = int(unsafe.Offsetof(RawCgroupEvent{}.PathLen))
	OffCgroupPath    = int(unsafe.Offsetof(RawCgroupEvent{}.Path))
	CgroupRecordSize = int(unsafe.Sizeof(RawCgroupEvent{}))
)
