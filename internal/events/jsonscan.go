package events

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parser reads one JSON object of the feed. It knows the schema's keys and
// skips any other, as docs/ndjson.md asks of readers. It does not allocate.
type parser struct {
	b     []byte
	i     int
	depth int    // objects and arrays open: bounded by maxDepth
	str   []byte // scratch for unescaped strings
	valid []byte // scratch for strings made valid UTF-8
}

// maxDepth bounds how deeply objects and arrays nest. The feed's deepest
// value is two levels below the line's object; an unknown field nested
// deeper than this is refused, not followed (each level is a frame of
// the recursive skip).
const maxDepth = 32

// text returns s as the encoder would print it: each byte that is not
// valid UTF-8 becomes U+FFFD. Events then hold what their lines say, and
// a line read back and written again is the same line.
func (p *parser) text(s []byte) []byte {
	if utf8.Valid(s) {
		return s
	}
	p.valid = p.valid[:0]
	for i := 0; i < len(s); {
		var size int
		p.valid, size = appendRune(p.valid, s[i:])
		i += size
	}
	return p.valid
}

// appendRune appends the character s starts with, U+FFFD for a byte that
// starts none, and says how many bytes of s it took.
func appendRune(dst, s []byte) ([]byte, int) {
	r, size := utf8.DecodeRune(s)
	if r == utf8.RuneError && size == 1 {
		return utf8.AppendRune(dst, utf8.RuneError), 1
	}
	return append(dst, s[:size]...), size
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

// open enters an object or array that starts with c.
func (p *parser) open(c byte) error {
	if err := p.expect(c); err != nil {
		return err
	}
	if p.depth++; p.depth > maxDepth {
		return fmt.Errorf("%w: nested more than %d deep at byte %d", errSyntax, maxDepth, p.i)
	}
	return nil
}

// object calls field for each key of an object; field must consume the value.
func (p *parser) object(field func(key []byte) error) error {
	if err := p.open('{'); err != nil {
		return err
	}
	defer func() { p.depth-- }()
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
		if c < 0x20 {
			return nil, errControl(p.i)
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
		case c < 0x20:
			return nil, errControl(p.i)
		default:
			p.str = append(p.str, c)
			p.i++
		}
	}
	return nil, fmt.Errorf("%w: string not closed", errSyntax)
}

// errControl refuses a raw control character in a string, as the JSON
// grammar does: the encoder escapes them, so such a line was not written
// by it, and printed as it stands it would drive a terminal.
func errControl(at int) error {
	return fmt.Errorf("%w: a raw control character in a string at byte %d", errSyntax, at)
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
	if err := p.open('['); err != nil {
		return err
	}
	defer func() { p.depth-- }()
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

// AppendClean appends line, a JSON line that parsed, as the encoder would
// print its bytes: each byte that is not valid UTF-8 becomes U+FFFD, and
// the tabs and carriage returns JSON allows between tokens become spaces
// (raw control characters inside strings do not parse). The JSON value
// is the same; printed, it cannot drive a terminal.
func AppendClean(dst, line []byte) []byte {
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case c < 0x20:
			dst = append(dst, ' ')
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			var size int
			dst, size = appendRune(dst, line[i:])
			i += size
			continue
		}
		i++
	}
	return dst
}
