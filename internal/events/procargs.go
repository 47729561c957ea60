package events

// Kernels before 5.18 have no bpf_copy_from_user_task: their task iterator
// cannot read other processes' argv and flags its proc records so. The
// loader reads argv from /proc instead and writes it into the record with
// these, so that decoding and everything after it are the same on every
// kernel.

// ArgsUnread reports whether proc record rec still lacks the argv the
// kernel could not read (NSPT_F_ARGS_UNREAD).
func ArgsUnread(rec []byte) bool {
	return len(rec) >= OffProcArgs && ne.Uint32(rec[OffFlags:])&flagArgsUnread != 0
}

// PIDIn returns the record's subject's PID as pid namespace ns sees it,
// and false when the subject is not in ns.
func PIDIn(rec []byte, ns uint32) (uint32, bool) {
	levels := min(int(ne.Uint32(rec[OffLevels:])), MaxLevels)
	for i := range levels {
		if ne.Uint32(rec[OffPidNS+4*i:]) == ns {
			return ne.Uint32(rec[OffNSPid+4*i:]), true
		}
	}
	return 0, false
}

// SetProcArgs writes argv (NUL-separated, as /proc/PID/cmdline has it, at
// most ArgsLen bytes of it) into proc record rec, whose capacity must be
// ProcRecordMaxSize, clears NSPT_F_ARGS_UNREAD, and returns the record
// with its new length.
func SetProcArgs(rec, argv []byte, truncated bool) []byte {
	rec = rec[:ProcRecordMaxSize]
	n := copy(rec[OffProcArgs:], argv[:min(len(argv), ArgsLen)])
	ne.PutUint32(rec[OffProcArgsLen:], uint32(n))
	flags := ne.Uint32(rec[OffFlags:]) &^ flagArgsUnread
	if truncated || len(argv) > ArgsLen {
		flags |= flagArgsTruncated
	}
	ne.PutUint32(rec[OffFlags:], flags)
	return rec[:OffProcArgs+n]
}
