package events

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// ErrUnknownType is returned by Parse for a well-formed line of a type this
// version does not know (a newer nspidtrace wrote it): readers skip it.
var ErrUnknownType = errors.New("unknown event type")

// Parser reads NDJSON lines into Events. Keep one to read many lines: it
// reuses its scratch space, and does not allocate.
type Parser struct {
	p parser
	// The cgroup and container of the line being read, and the Cgroup
	// values made so far: lines of one cgroup share one.
	cg      cgroupFields
	cgroups map[string]*Cgroup
	cgKey   []byte
}

// cgroupFields are the `cgroup` and `container` fields of one line, copied
// out of the scanner's scratch space (a later string reuses it).
type cgroupFields struct {
	f              [cgFields][]byte
	seen           bool // either field is present
	container, pod bool
}

// The strings of cgroupFields.f.
const (
	cgPath = iota
	cgID
	cgName
	cgRuntime
	cgPodNS
	cgPodName
	cgPodUID
	cgUnresolved
	cgFields
)

// reset forgets the previous line, keeping the buffers.
func (cg *cgroupFields) reset() {
	for i := range cg.f {
		cg.f[i] = cg.f[i][:0]
	}
	cg.seen, cg.container, cg.pod = false, false, false
}

// maxInterned bounds the Cgroup values a Parser keeps: a recording of
// endless cgroup churn costs memory only up to it.
const maxInterned = 1 << 14

// Parse reads one line with a new Parser.
func Parse(line []byte, ev *Event) error {
	var ps Parser
	return ps.Parse(line, ev)
}

// Parse reads one NDJSON line of the feed (or of a recording) into ev. A
// header line returns ErrHeader. Fields it does not know are skipped.
// Namespace-flag names (nstype, flags) and `changed` are read back into the
// numbers they were made from.
//
// It is long on purpose: it is the hand-written parser's main switch, one
// case per field, so that a new field is one case beside the others.
func (ps *Parser) Parse(line []byte, ev *Event) error {
	ps.p.b, ps.p.i = line, 0
	p := &ps.p
	*ev = Event{}
	ps.cg.reset()
	var levels [3]int
	var typeSeen, header bool
	var changed uint16 // namespace kinds `changed` names
	err := p.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "type":
			var s []byte
			if s, err = p.string(); err != nil {
				return err
			}
			if string(s) == "header" {
				header = true
				return nil
			}
			ev.Type = parseTypeBytes(s)
			typeSeen = true
		case "time":
			var s []byte
			if s, err = p.string(); err != nil {
				return err
			}
			var ok bool
			if ev.Time, ok = parseTime(s); !ok {
				return fmt.Errorf("bad time %q", s)
			}
		case "pid":
			ev.PID, err = p.uint32()
		case "tid":
			ev.TID, err = p.uint32()
		case "ppid":
			ev.PPID, err = p.uint32()
		case "nspid":
			levels[0], err = p.uints(ev.NSPid[:])
		case "pidns":
			levels[1], err = p.uints(ev.PidNS[:])
		case "nsppid":
			levels[2], err = p.uints(ev.NSPPid[:])
		case "comm":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.CommLen = uint8(copy(ev.Comm[:], truncUTF8(p.text(s), CommLen-1)))
			}
		case "state":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.Zombie = string(s) == "zombie"
			}
		case "old_comm":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.OldCommLen = uint8(copy(ev.OldComm[:], truncUTF8(p.text(s), CommLen-1)))
			}
		case "filename":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.FilenameLen = uint16(copy(ev.Filename[:], truncUTF8(p.text(s), FilenameLen)))
			}
		case "args":
			n := 0
			err = p.array(func(int) error {
				s, err := p.string()
				if err != nil {
					return err
				}
				// What does not fit is cut, as the kernel side cuts
				// argv; a line may hold more than a recorder would
				// write (U+FFFD takes three bytes for each invalid one).
				if n >= ArgsLen {
					ev.ArgsTruncated = true
					return nil
				}
				s = p.text(s)
				if n+len(s)+1 > ArgsLen {
					ev.ArgsTruncated = true
					s = truncUTF8(s, ArgsLen-n-1)
				}
				n += copy(ev.Args[n:], s)
				ev.Args[n] = 0
				n++
				return nil
			})
			ev.ArgsLen = uint16(n)
		case "args_truncated":
			var b bool
			b, err = p.bool()
			ev.ArgsTruncated = ev.ArgsTruncated || b
		case "ns":
			err = p.object(func(k []byte) error {
				kind := nsKind(k)
				v, err := p.uint32()
				if kind >= 0 {
					ev.NS[kind] = v
				}
				return err
			})
		case "cgroup":
			ps.cg.seen = true
			err = ps.keep(cgPath)
		case "container":
			err = ps.container()
		case "attribution_error":
			ps.cg.seen = true
			err = ps.keep(cgUnresolved)
		case "outside_init_cgroup":
			ev.OutsideInitCgroup, err = p.bool()
		case "findings":
			err = ps.findings(ev)
		case "exe":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.ExeMemfd = string(s) == "memfd"
				ev.ExeUnlinked = ev.ExeMemfd || string(s) == "unlinked"
			}
		case "uid":
			ev.UID, err = p.uint32()
		case "gid":
			ev.GID, err = p.uint32()
		case "cred":
			err = p.parseCred(&ev.Cred)
		case "old_cred":
			err = p.parseOldIDs(&ev.OldIDs)
		case "syscall":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.Syscall = parseSyscall(s)
			}
		case "start":
			var s []byte
			if s, err = p.string(); err != nil {
				return err
			}
			var ok bool
			if ev.Start, ok = parseTime(s); !ok {
				return fmt.Errorf("bad start %q", s)
			}
		case "key", "pkey", "entered_by":
			k := key[0]
			var s []byte
			if s, err = p.string(); err != nil {
				return err
			}
			pid, start, ok := parseKey(s)
			if !ok {
				return fmt.Errorf("bad key %q (want PID@START)", s)
			}
			switch k {
			case 'k':
				ev.StartBoot = start
			case 'p':
				ev.ParentStartBoot = start
			default:
				ev.EnteredBy = Key{PID: pid, Start: start}
			}
		case "thread":
			ev.Thread, err = p.bool()
		case "old_tid":
			ev.OldTID, err = p.uint32()
		case "exit_code":
			var n int64
			n, err = p.number()
			ev.ExitStatus |= uint32(n&0xff) << 8
		case "signal":
			var n int64
			n, err = p.number()
			if ev.Type == TypeSignal {
				ev.Sig.Number = uint32(n & 0xff)
			} else {
				ev.ExitStatus |= uint32(n & 0x7f)
			}
		case "result":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.Sig.Result = parseSignalResult(s)
			}
		case "sender":
			err = ps.sender(&ev.Sig)
		case "core_dumped":
			var b bool
			if b, err = p.bool(); b {
				ev.ExitStatus |= 0x80
			}
		case "reaper":
			ev.Reaper, err = p.uint32()
		case "nstype", "flags":
			err = p.array(func(int) error {
				s, err := p.string()
				ev.NSArg |= cloneFlag(s)
				return err
			})
		case "ret":
			ev.Ret, err = p.number()
		case "changed":
			err = p.object(func(k []byte) error {
				kind := nsKind(k)
				return p.object(func(fk []byte) error {
					v, err := p.uint32()
					if kind >= 0 && string(fk) == "from" {
						ev.OldNS[kind] = v
						changed |= 1 << kind
					}
					return err
				})
			})
		case "count":
			var n int64
			n, err = p.number()
			ev.Count = uint64(n)
		default:
			err = p.skip()
		}
		return err
	})
	if err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.b) {
		return fmt.Errorf("%w: text after the object", errSyntax)
	}
	if header {
		return ErrHeader
	}
	if !typeSeen {
		return errors.New(`no "type"`)
	}
	switch ev.Type {
	case 0:
		return ErrUnknownType
	case TypeLost, TypeEnd:
		return nil
	}
	if levels[0] == 0 || levels[0] != levels[1] || levels[0] != levels[2] {
		return fmt.Errorf("nspid, pidns and nsppid have %d, %d and %d levels", levels[0], levels[1], levels[2])
	}
	ev.Levels = levels[0]
	ev.Cgroup = ps.cgroup()
	if ev.TID == 0 {
		ev.TID = ev.PID
	}
	// OldNS holds what changed; what did not is what it is now.
	for k := range ev.OldNS {
		if changed&(1<<k) == 0 {
			ev.OldNS[k] = ev.NS[k]
		}
	}
	return nil
}

// writes (UTC, nine fractional digits) is read directly; any other RFC 3339
// time through the time package.
func parseTime(s []byte) (int64, bool) {
	if len(s) == len("2006-01-02T15:04:05.000000000Z") && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
		s[13] == ':' && s[16] == ':' && s[19] == '.' && s[29] == 'Z' {
		num := func(b []byte) (int, bool) {
			n := 0
			for _, c := range b {
				if c < '0' || c > '9' {
					return 0, false
				}
				n = n*10 + int(c-'0')
			}
			return n, true
		}
		y, ok1 := num(s[0:4])
		mo, ok2 := num(s[5:7])
		d, ok3 := num(s[8:10])
		h, ok4 := num(s[11:13])
		mi, ok5 := num(s[14:16])
		sec, ok6 := num(s[17:19])
		ns, ok7 := num(s[20:29])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 61 {
			return time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC).UnixNano(), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}

// truncUTF8 cuts s to at most n bytes, not inside a UTF-8 sequence, so that
// what is cut encodes the same way again.
func truncUTF8(s []byte, n int) []byte {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// parseTypeBytes is ParseType without allocating; 0 when unknown.
func parseTypeBytes(s []byte) Type {
	for t := TypeFork; t < typeEnd; t++ {
		if typeNames[t] == string(s) {
			return t
		}
	}
	return 0
}

func nsKind(name []byte) int {
	for k, n := range NSNames {
		if n == string(name) {
			return k
		}
	}
	return -1
}

func cloneFlag(name []byte) uint64 {
	for _, f := range cloneFlags {
		if f.name == string(name) {
			return f.bit
		}
	}
	if hasPrefix(name, "0x") {
		n, _ := strconv.ParseUint(string(name[2:]), 16, 64)
		return n
	}
	return 0
}

// keep reads a string into field i of the line's cgroup fields.
func (ps *Parser) keep(i int) error {
	s, err := ps.p.string()
	ps.cg.f[i] = append(ps.cg.f[i][:0], ps.p.text(s)...)
	return err
}

// container reads the `container` object.
func (ps *Parser) container() error {
	p, cg := &ps.p, &ps.cg
	cg.seen, cg.container = true, true
	return p.object(func(k []byte) error {
		switch string(k) {
		case "id":
			return ps.keep(cgID)
		case "name":
			return ps.keep(cgName)
		case "runtime":
			return ps.keep(cgRuntime)
		case "pod":
			cg.pod = true
			return p.object(func(k []byte) error {
				switch string(k) {
				case "namespace":
					return ps.keep(cgPodNS)
				case "name":
					return ps.keep(cgPodName)
				case "uid":
					return ps.keep(cgPodUID)
				}
				return p.skip()
			})
		}
		return p.skip()
	})
}

// cgroup returns the Cgroup the line's fields describe, one value for all
// lines that describe the same; nil when it has neither field.
func (ps *Parser) cgroup() *Cgroup {
	cg := &ps.cg
	if !cg.seen {
		return nil
	}
	ps.cgKey = ps.cgKey[:0]
	for _, b := range cg.f {
		ps.cgKey = append(append(ps.cgKey, b...), 0)
	}
	ps.cgKey = append(ps.cgKey, byte(boolBit(cg.container)|boolBit(cg.pod)<<1))
	if c, ok := ps.cgroups[string(ps.cgKey)]; ok {
		return c
	}
	var c *Container
	if cg.container {
		c = &Container{ID: string(cg.f[cgID]), Name: string(cg.f[cgName]), Runtime: string(cg.f[cgRuntime])}
		if cg.pod {
			c.Pod = &Pod{Namespace: string(cg.f[cgPodNS]), Name: string(cg.f[cgPodName]), UID: string(cg.f[cgPodUID])}
		}
	}
	made := NewUnresolved(0, string(cg.f[cgPath]), c, string(cg.f[cgUnresolved]))
	if ps.cgroups == nil || len(ps.cgroups) >= maxInterned {
		ps.cgroups = make(map[string]*Cgroup)
	}
	ps.cgroups[string(ps.cgKey)] = made
	return made
}

func boolBit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseSignalResult reads a signal's result as appendSignal wrote it.
func parseSignalResult(s []byte) int32 {
	for i, name := range signalResults {
		if string(s) == name {
			return int32(i)
		}
	}
	n, _ := strconv.ParseInt(string(s), 10, 32)
	return int32(n)
}

// sender reads a signal line's `sender` object.
func (ps *Parser) sender(sig *SignalInfo) error {
	p, s := &ps.p, &sig.Sender
	return p.object(func(k []byte) error {
		var err error
		switch string(k) {
		case "pid":
			s.PID, err = p.uint32()
		case "tid":
			s.TID, err = p.uint32()
		case "uid":
			s.UID, err = p.uint32()
		case "nspid":
			s.Levels, err = p.uints(s.NSPid[:])
		case "pidns":
			_, err = p.uints(s.PidNS[:])
		case "comm":
			var b []byte
			if b, err = p.string(); err == nil {
				s.CommLen = uint8(copy(s.Comm[:], truncUTF8(p.text(b), CommLen-1)))
			}
		case "key":
			var b []byte
			if b, err = p.string(); err == nil {
				var ok bool
				var pid uint32
				if pid, s.StartBoot, ok = parseKey(b); !ok || pid != s.PID && s.PID != 0 {
					s.StartBoot = 0
				}
			}
		default:
			err = p.skip()
		}
		return err
	})
}
