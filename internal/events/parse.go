package events

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Header is the first line of a recording (SPEC.md section 4).
type Header struct {
	Format   string
	Version  int
	Hostname string
	Kernel   string
	BootID   string
	Start    int64 // Unix ns
}

// RecordFormat names nspidtrace recordings in their header.
const RecordFormat = "nspidtrace-record"

// ErrHeader is returned by Parse for a header line; ParseHeader reads it.
var ErrHeader = errors.New("header line")

// AppendHeader appends h as the recording's first line.
func AppendHeader(buf []byte, h *Header) []byte {
	buf = append(buf, `{"type":"header","format":`...)
	buf = appendString(buf, []byte(h.Format))
	buf = append(buf, `,"version":`...)
	buf = strconv.AppendInt(buf, int64(h.Version), 10)
	buf = append(buf, `,"hostname":`...)
	buf = appendString(buf, []byte(h.Hostname))
	buf = append(buf, `,"kernel":`...)
	buf = appendString(buf, []byte(h.Kernel))
	buf = append(buf, `,"boot_id":`...)
	buf = appendString(buf, []byte(h.BootID))
	buf = append(buf, `,"start":"`...)
	buf = time.Unix(0, h.Start).UTC().AppendFormat(buf, timeLayout)
	return append(buf, "\"}\n"...)
}

// parser reads one JSON object of the feed. It knows the schema's keys and
// skips any other, as SPEC.md asks of readers. It does not allocate.
type parser struct {
	b     []byte
	i     int
	str   []byte // scratch for unescaped strings
	valid []byte // scratch for strings made valid UTF-8
}

// text returns s as the encoder would print it: each byte that is not
// valid UTF-8 becomes U+FFFD. Events then hold what their lines say, and
// a line read back and written again is the same line.
func (p *parser) text(s []byte) []byte {
	if utf8.Valid(s) {
		return s
	}
	p.valid = p.valid[:0]
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			p.valid = utf8.AppendRune(p.valid, utf8.RuneError)
		} else {
			p.valid = append(p.valid, s[i:i+size]...)
		}
		i += size
	}
	return p.valid
}

var errSyntax = errors.New("not valid JSON")

func (p *parser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) expect(c byte) error {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != c {
		return fmt.Errorf("%w: want %q at byte %d", errSyntax, c, p.i)
	}
	p.i++
	return nil
}

// object calls field for each key of an object; field must consume the value.
func (p *parser) object(field func(key []byte) error) error {
	if err := p.expect('{'); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		key, err := p.string()
		if err != nil {
			return err
		}
		// The key is in p.str, which the value may reuse: copy-free keys
		// are compared before the value is read.
		if err := p.expect(':'); err != nil {
			return err
		}
		if err := field(key); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return fmt.Errorf("%w: object not closed", errSyntax)
		}
		if p.b[p.i] == '}' {
			p.i++
			return nil
		}
		if err := p.expect(','); err != nil {
			return err
		}
	}
}

// string reads a JSON string. Without escapes it returns a slice of the
// input; with them, of p.str (valid until the next string).
func (p *parser) string() ([]byte, error) {
	if err := p.expect('"'); err != nil {
		return nil, err
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			p.i++
			return p.b[start : p.i-1], nil
		}
		if c == '\\' {
			break
		}
		p.i++
	}
	p.str = append(p.str[:0], p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.str, nil
		case c == '\\':
			if p.i+1 >= len(p.b) {
				return nil, errSyntax
			}
			p.i += 2
			switch e := p.b[p.i-1]; e {
			case '"', '\\', '/':
				p.str = append(p.str, e)
			case 'n':
				p.str = append(p.str, '\n')
			case 't':
				p.str = append(p.str, '\t')
			case 'r':
				p.str = append(p.str, '\r')
			case 'b':
				p.str = append(p.str, '\b')
			case 'f':
				p.str = append(p.str, '\f')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return nil, err
				}
				if utf16.IsSurrogate(r) && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					r2, err := p.hex4()
					if err != nil {
						return nil, err
					}
					r = utf16.DecodeRune(r, r2)
				}
				p.str = utf8.AppendRune(p.str, r)
			default:
				return nil, fmt.Errorf("%w: bad escape \\%c", errSyntax, e)
			}
		default:
			p.str = append(p.str, c)
			p.i++
		}
	}
	return nil, fmt.Errorf("%w: string not closed", errSyntax)
}

func (p *parser) hex4() (rune, error) {
	if p.i+4 > len(p.b) {
		return 0, errSyntax
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, errSyntax
	}
	p.i += 4
	return rune(n), nil
}

// number reads an integer.
func (p *parser) number() (int64, error) {
	p.ws()
	start := p.i
	if p.i < len(p.b) && p.b[p.i] == '-' {
		p.i++
	}
	var n int64
	digits := 0
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
		digits++
	}
	if digits == 0 || digits > 19 {
		return 0, fmt.Errorf("%w: bad number at byte %d", errSyntax, start)
	}
	if p.b[start] == '-' {
		n = -n
	}
	return n, nil
}

func (p *parser) uint32() (uint32, error) {
	n, err := p.number()
	if err != nil || n < 0 || n > 1<<32-1 {
		return 0, fmt.Errorf("%w: want a 32-bit unsigned number", errSyntax)
	}
	return uint32(n), nil
}

func (p *parser) bool() (bool, error) {
	p.ws()
	switch {
	case hasPrefix(p.b[p.i:], "true"):
		p.i += 4
		return true, nil
	case hasPrefix(p.b[p.i:], "false"):
		p.i += 5
		return false, nil
	}
	return false, fmt.Errorf("%w: want true or false", errSyntax)
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// array calls elem for each element of an array.
func (p *parser) array(elem func(i int) error) error {
	if err := p.expect('['); err != nil {
		return err
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return err
		}
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == ']' {
			p.i++
			return nil
		}
		if err := p.expect(','); err != nil {
			return err
		}
	}
}

func (p *parser) uints(dst []uint32) (int, error) {
	n := 0
	err := p.array(func(i int) error {
		if i >= len(dst) {
			return fmt.Errorf("%w: more than %d levels", errSyntax, len(dst))
		}
		v, err := p.uint32()
		dst[i] = v
		n = i + 1
		return err
	})
	return n, err
}

// skip consumes any value.
func (p *parser) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.string()
		return err
	case c == '{':
		return p.object(func([]byte) error { return p.skip() })
	case c == '[':
		return p.array(func(int) error { return p.skip() })
	case c == 't' || c == 'f':
		_, err := p.bool()
		return err
	case hasPrefix(p.b[p.i:], "null"):
		p.i += 4
		return nil
	default:
		p.ws()
		for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
			p.i++
		}
		return nil
	}
}

// Parser reads NDJSON lines into Events. Keep one to read many lines: it
// reuses its scratch space, and does not allocate.
type Parser struct {
	p parser
}

// Parse reads one line with a new Parser.
func Parse(line []byte, ev *Event) error {
	var ps Parser
	return ps.Parse(line, ev)
}

// Parse reads one NDJSON line of the feed (or of a recording) into ev. A
// header line returns ErrHeader. Fields it does not know are skipped.
// Namespace-flag names (nstype, flags) and `changed` are read back into the
// numbers they were made from.
func (ps *Parser) Parse(line []byte, ev *Event) error {
	ps.p.b, ps.p.i = line, 0
	p := &ps.p
	*ev = Event{}
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
			if ev.Type == 0 {
				return fmt.Errorf("unknown event type %q", s)
			}
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
		case "filename":
			var s []byte
			if s, err = p.string(); err == nil {
				ev.FilenameLen = uint16(copy(ev.Filename[:], truncUTF8(p.text(s), FilenameLen)))
			}
		case "args":
			n := 0
			err = p.array(func(int) error {
				s, err := p.string()
				s = p.text(s)
				if n+len(s)+1 > ArgsLen {
					ev.ArgsTruncated = true
					s = truncUTF8(s, max(0, ArgsLen-n-1))
				}
				n += copy(ev.Args[n:], s)
				ev.Args[n] = 0
				n++
				return err
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
		case "uid":
			ev.UID, err = p.uint32()
		case "gid":
			ev.GID, err = p.uint32()
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
			ev.ExitStatus |= uint32(n & 0x7f)
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
	if ev.Type == TypeLost {
		return nil
	}
	if levels[0] == 0 || levels[0] != levels[1] || levels[0] != levels[2] {
		return fmt.Errorf("nspid, pidns and nsppid have %d, %d and %d levels", levels[0], levels[1], levels[2])
	}
	ev.Levels = levels[0]
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

// ParseHeader reads a recording's header line.
func ParseHeader(line []byte) (Header, error) {
	var h Header
	p := parser{b: line}
	err := p.object(func(key []byte) error {
		switch string(key) {
		case "format", "hostname", "kernel", "boot_id", "start", "type":
			k := string(key)
			s, err := p.string()
			switch k {
			case "format":
				h.Format = string(s)
			case "hostname":
				h.Hostname = string(s)
			case "kernel":
				h.Kernel = string(s)
			case "boot_id":
				h.BootID = string(s)
			case "start":
				ts, terr := time.Parse(time.RFC3339Nano, string(s))
				if terr != nil {
					return fmt.Errorf("bad start %q", s)
				}
				h.Start = ts.UnixNano()
			}
			return err
		case "version":
			n, err := p.number()
			h.Version = int(n)
			return err
		}
		return p.skip()
	})
	return h, err
}

// parseTime reads an RFC 3339 time as Unix ns. The layout nspidtrace
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
