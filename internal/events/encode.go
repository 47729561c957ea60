package events

import (
	"strconv"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// timeLayout is RFC 3339 with all nine fractional digits, so lines sort and
// align as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendTime appends the instant ns (Unix nanoseconds) in UTC as timeLayout
// has it. Field by field: every line has one or two, and time's layout
// interpreter took 5% of trace's CPU.
func AppendTime(buf []byte, ns int64) []byte {
	t := time.Unix(0, ns).UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(buf, timeLayout)
	}
	hour, min, sec := t.Clock()
	buf = appendPadded(buf, year, 4)
	buf = appendPadded(append(buf, '-'), int(month), 2)
	buf = appendPadded(append(buf, '-'), day, 2)
	buf = appendPadded(append(buf, 'T'), hour, 2)
	buf = appendPadded(append(buf, ':'), min, 2)
	buf = appendPadded(append(buf, ':'), sec, 2)
	buf = appendPadded(append(buf, '.'), t.Nanosecond(), 9)
	return append(buf, 'Z')
}

// appendPadded appends n (0 or more) in width digits, zeros first.
func appendPadded(buf []byte, n, width int) []byte {
	var d [9]byte
	for i := width - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(buf, d[:width]...)
}

// Namespace flags of clone(2), unshare(2) and setns(2), by name.
var cloneFlags = []struct {
	bit  uint64
	name string
}{
	{0x00000080, "time"},
	{0x00000100, "vm"},
	{0x00000200, "fs"},
	{0x00000400, "files"},
	{0x00000800, "sighand"},
	{0x00010000, "thread"},
	{0x00020000, "mnt"},
	{0x00040000, "sysvsem"},
	{0x02000000, "cgroup"},
	{0x04000000, "uts"},
	{0x08000000, "ipc"},
	{0x10000000, "user"},
	{0x20000000, "pid"},
	{0x40000000, "net"},
}

// AppendJSON appends ev as one NDJSON line (with its newline) to buf, in the
// field order of docs/ndjson.md. It does not allocate beyond growing buf.
func AppendJSON(buf []byte, ev *Event) []byte {
	buf = append(buf, `{"time":"`...)
	buf = AppendTime(buf, ev.Time)
	buf = append(buf, `","type":"`...)
	buf = append(buf, ev.Type.String()...)
	buf = append(buf, '"')
	if len(ev.Host) > 0 {
		buf = append(buf, `,"host":`...)
		buf = appendString(buf, ev.Host)
	}

	switch ev.Type {
	case TypeLost:
		buf = append(buf, `,"count":`...)
		buf = strconv.AppendUint(buf, ev.Count, 10)
		return append(buf, "}\n"...)
	case TypeEnd:
		return append(buf, "}\n"...)
	}

	buf = appendProcess(buf, ev)

	switch ev.Type {
	case TypeFork:
		if ev.Thread {
			buf = append(buf, `,"thread":true`...)
		}
	case TypeSignal:
		buf = appendSignal(buf, &ev.Sig)
	case TypeRename:
		buf = append(buf, `,"old_comm":`...)
		buf = appendString(buf, ev.OldComm[:ev.OldCommLen])
	case TypeExec:
		if ev.OldTID != 0 {
			buf = append(buf, `,"old_tid":`...)
			buf = strconv.AppendUint(buf, uint64(ev.OldTID), 10)
		}
	case TypeCred:
		buf = appendCredChange(buf, ev)
	case TypeProc:
		if ev.Zombie {
			buf = append(buf, `,"state":"zombie"`...)
			buf = appendExitStatus(buf, ev)
		}
	case TypeExit:
		if ev.Thread {
			buf = append(buf, `,"thread":true`...)
		}
		buf = appendExitStatus(buf, ev)
		if !ev.Thread {
			buf = append(buf, `,"reaper":`...)
			buf = strconv.AppendUint(buf, uint64(ev.Reaper), 10)
		}
	case TypeSetns, TypeUnshare:
		buf = appendNSChange(buf, ev)
	}
	return append(buf, "}\n"...)
}

// appendNSChange appends a setns or unshare line's own fields: its
// argument, its return value and the namespaces it changed.
func appendNSChange(buf []byte, ev *Event) []byte {
	if ev.Type == TypeSetns {
		buf = append(buf, `,"nstype":`...)
	} else {
		buf = append(buf, `,"flags":`...)
	}
	buf = appendCloneFlags(buf, ev.NSArg)
	buf = append(buf, `,"ret":`...)
	buf = strconv.AppendInt(buf, ev.Ret, 10)
	buf = append(buf, `,"changed":{`...)
	first := true
	for k, name := range NSNames {
		if ev.OldNS[k] == ev.NS[k] {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, '"')
		buf = append(buf, name...)
		buf = append(buf, `":{"from":`...)
		buf = strconv.AppendUint(buf, uint64(ev.OldNS[k]), 10)
		buf = append(buf, `,"to":`...)
		buf = strconv.AppendUint(buf, uint64(ev.NS[k]), 10)
		buf = append(buf, '}')
	}
	return append(buf, '}')
}

// appendProcess appends the process fields (the `proc` object's), with a
// leading comma.
func appendProcess(buf []byte, ev *Event) []byte {
	buf = append(buf, `,"pid":`...)
	buf = strconv.AppendUint(buf, uint64(ev.PID), 10)
	buf = append(buf, `,"tid":`...)
	buf = strconv.AppendUint(buf, uint64(ev.TID), 10)
	buf = append(buf, `,"ppid":`...)
	buf = strconv.AppendUint(buf, uint64(ev.PPID), 10)
	buf = append(buf, `,"nspid":`...)
	buf = appendUints(buf, ev.NSPid[:ev.Levels])
	buf = append(buf, `,"pidns":`...)
	buf = appendUints(buf, ev.PidNS[:ev.Levels])
	buf = append(buf, `,"nsppid":`...)
	buf = appendUints(buf, ev.NSPPid[:ev.Levels])
	buf = append(buf, `,"comm":`...)
	buf = appendString(buf, ev.Comm[:ev.CommLen])
	if ev.Type == TypeExec {
		buf = append(buf, `,"filename":`...)
		buf = appendString(buf, ev.Filename[:ev.FilenameLen])
	}
	switch {
	case ev.Type != TypeExec && ev.Type != TypeProc:
	case ev.ExeMemfd:
		buf = append(buf, `,"exe":"memfd"`...)
	case ev.ExeUnlinked:
		buf = append(buf, `,"exe":"unlinked"`...)
	}
	if ev.Type == TypeExec || ev.Type == TypeProc {
		buf = appendArgs(buf, ev)
	}
	buf = append(buf, `,"ns":{`...)
	for k, name := range NSNames {
		if k > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, name...)
		buf = append(buf, `":`...)
		buf = strconv.AppendUint(buf, uint64(ev.NS[k]), 10)
	}
	buf = append(buf, `},"uid":`...)
	buf = strconv.AppendUint(buf, uint64(ev.UID), 10)
	buf = append(buf, `,"gid":`...)
	buf = strconv.AppendUint(buf, uint64(ev.GID), 10)
	if ev.Cred.Known && (ev.Type == TypeExec || ev.Type == TypeProc || ev.Type == TypeCred) {
		buf = appendCred(buf, &ev.Cred)
	}
	if ev.Cgroup != nil {
		buf = append(buf, ev.Cgroup.json...)
	}
	if ev.Start != 0 {
		buf = append(buf, `,"start":"`...)
		buf = AppendTime(buf, ev.Start)
		buf = append(buf, '"')
	}
	if ev.StartBoot != 0 {
		buf = append(buf, `,"key":`...)
		buf = AppendKey(buf, ev.PID, ev.StartBoot)
	}
	if ev.ParentStartBoot != 0 && ev.PPID != 0 {
		buf = append(buf, `,"pkey":`...)
		buf = AppendKey(buf, ev.PPID, ev.ParentStartBoot)
	}
	if ev.NSInit() {
		buf = append(buf, `,"ns_init":true`...)
	}
	if ev.EnteredBy.PID != 0 {
		buf = append(buf, `,"entered_by":`...)
		buf = AppendKey(buf, ev.EnteredBy.PID, ev.EnteredBy.Start)
	}
	if ev.OutsideInitCgroup {
		buf = append(buf, `,"outside_init_cgroup":true`...)
	}
	if len(ev.Findings) > 0 {
		buf = appendFindings(buf, ev.Findings)
	}
	if ev.NAncestors > 0 {
		buf = appendAncestors(buf, ev.Ancestors[:min(ev.NAncestors, MaxAncestors)])
	}
	return buf
}

// appendArgs appends argv, and whether it was cut.
func appendArgs(buf []byte, ev *Event) []byte {
	buf = append(buf, `,"args":[`...)
	first := true
	forEachArg(ev.Args[:ev.ArgsLen], func(a []byte) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendString(buf, a)
	})
	buf = append(buf, ']')
	if ev.ArgsTruncated {
		buf = append(buf, `,"args_truncated":true`...)
	}
	return buf
}

// signalResults names enum trace_signal's values.
var signalResults = [...]string{"delivered", "ignored", "already_pending", "queue_full", "delivered_without_info"}

// SignalName names signal n, "SIGKILL", or "signal N" for one without a name.
func SignalName(n uint32) string {
	if name := unix.SignalName(syscall.Signal(n)); name != "" {
		return name
	}
	return "signal " + strconv.FormatUint(uint64(n), 10)
}

// SignalResult names what became of a signal: "ignored", "queue_full".
func SignalResult(r int32) string {
	if r >= 0 && int(r) < len(signalResults) {
		return signalResults[r]
	}
	return strconv.Itoa(int(r))
}

// appendSignal appends a signal event's own fields.
func appendSignal(buf []byte, sig *SignalInfo) []byte {
	buf = append(buf, `,"signal":`...)
	buf = strconv.AppendUint(buf, uint64(sig.Number), 10)
	if name := unix.SignalName(syscall.Signal(sig.Number)); name != "" {
		buf = append(buf, `,"signal_name":"`...)
		buf = append(buf, name...)
		buf = append(buf, '"')
	}
	buf = append(buf, `,"result":"`...)
	if r := int(sig.Result); r >= 0 && r < len(signalResults) {
		buf = append(buf, signalResults[r]...)
	} else {
		buf = strconv.AppendInt(buf, int64(r), 10)
	}
	s := &sig.Sender
	buf = append(buf, `","sender":{"pid":`...)
	buf = strconv.AppendUint(buf, uint64(s.PID), 10)
	buf = append(buf, `,"tid":`...)
	buf = strconv.AppendUint(buf, uint64(s.TID), 10)
	buf = append(buf, `,"nspid":`...)
	buf = appendUints(buf, s.NSPid[:s.Levels])
	buf = append(buf, `,"pidns":`...)
	buf = appendUints(buf, s.PidNS[:s.Levels])
	buf = append(buf, `,"comm":`...)
	buf = appendString(buf, s.Comm[:s.CommLen])
	if s.StartBoot != 0 {
		buf = append(buf, `,"key":`...)
		buf = AppendKey(buf, s.PID, s.StartBoot)
	}
	buf = append(buf, `,"uid":`...)
	buf = strconv.AppendUint(buf, uint64(s.UID), 10)
	return append(buf, '}')
}

// appendExitStatus appends exit_code, signal and core_dumped.
func appendExitStatus(buf []byte, ev *Event) []byte {
	buf = append(buf, `,"exit_code":`...)
	buf = strconv.AppendInt(buf, int64(ev.ExitCode()), 10)
	buf = append(buf, `,"signal":`...)
	buf = strconv.AppendInt(buf, int64(ev.Signal()), 10)
	buf = append(buf, `,"core_dumped":`...)
	return strconv.AppendBool(buf, ev.CoreDumped())
}

// appendAncestors appends the `ancestors` array, parent first.
func appendAncestors(buf []byte, as []Ancestor) []byte {
	buf = append(buf, `,"ancestors":[`...)
	for i := range as {
		a := &as[i]
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"pid":`...)
		buf = strconv.AppendUint(buf, uint64(a.PID), 10)
		if a.NSPid != 0 {
			buf = append(buf, `,"nspid":`...)
			buf = strconv.AppendUint(buf, uint64(a.NSPid), 10)
		}
		buf = append(buf, `,"comm":`...)
		buf = appendString(buf, a.Comm[:a.CommLen])
		if a.StartBoot != 0 {
			buf = append(buf, `,"key":`...)
			buf = AppendKey(buf, a.PID, a.StartBoot)
		}
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// AppendKey appends a process key as a JSON string: "PID@START", the host
// TGID and its start in CLOCK_BOOTTIME nanoseconds. It names one process on
// one boot (the recording header's boot_id names the boot), whatever later
// holds the PID, and is the same in every run of nspidtrace.
func AppendKey(buf []byte, pid uint32, startBoot uint64) []byte {
	buf = append(buf, '"')
	buf = strconv.AppendUint(buf, uint64(pid), 10)
	buf = append(buf, '@')
	buf = strconv.AppendUint(buf, startBoot, 10)
	return append(buf, '"')
}

// parseKey reads "PID@START" without allocating.
func parseKey(s []byte) (pid uint32, start uint64, ok bool) {
	var n [2]uint64
	part, digits := 0, 0
	for _, c := range s {
		switch {
		case c == '@' && part == 0 && digits > 0:
			part, digits = 1, 0
		case c >= '0' && c <= '9' && digits < 20:
			n[part] = n[part]*10 + uint64(c-'0')
			digits++
		default:
			return 0, 0, false
		}
	}
	return uint32(n[0]), n[1], part == 1 && digits > 0 && n[0] <= 1<<32-1
}

func appendUints(buf []byte, v []uint32) []byte {
	buf = append(buf, '[')
	for i, n := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendUint(buf, uint64(n), 10)
	}
	return append(buf, ']')
}

// appendCloneFlags appends flags as a JSON array of names; bits without a
// name appear as one hexadecimal string.
func appendCloneFlags(buf []byte, flags uint64) []byte {
	buf = append(buf, '[')
	first := true
	for _, f := range cloneFlags {
		if flags&f.bit == 0 {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, '"')
		buf = append(buf, f.name...)
		buf = append(buf, '"')
		flags &^= f.bit
	}
	if flags != 0 {
		if !first {
			buf = append(buf, ',')
		}
		buf = append(buf, `"0x`...)
		buf = strconv.AppendUint(buf, flags, 16)
		buf = append(buf, '"')
	}
	return append(buf, ']')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does, so every line is valid UTF-8 whatever a comm holds;
// it is written as the character itself, as a real U+FFFD is, so that a line
// read back encodes to the same bytes.
func appendString(buf []byte, s []byte) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20 || c == 0x7f:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		var size int
		buf, size = appendRune(buf, s[i:])
		i += size
	}
	return append(buf, '"')
}

// ParseKey reads a key as lines write it, "PID@START".
func ParseKey(s string) (Key, bool) {
	pid, start, ok := parseKey([]byte(s))
	return Key{PID: pid, Start: start}, ok && pid != 0
}

// String writes the key as lines do, without quotes.
func (k Key) String() string {
	b := AppendKey(nil, k.PID, k.Start)
	return string(b[1 : len(b)-1])
}

// MarshalText writes the key as String does: JSON encoders write it as a
// string, as lines do.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }
