// Package termsafe makes text that processes control (comm, argv, names
// read from containers) safe to print on an operator's terminal.
//
// Any process chooses its own argv and comm. Printed raw, an escape
// sequence in them can clear the screen, retitle the window, hide or fake
// rows, or make some terminals act (clipboard writes, title reports); a
// bidirectional override can make text read other than it is. Everything
// that is not plainly visible is therefore written as a visible escape:
// control characters (C0, DEL, C1) as \xNN or \u00NN, invisible format
// characters (bidi controls, zero-width characters) and line or paragraph
// separators as \uNNNN, bytes that are not UTF-8 as \xNN, and the backslash
// itself as \\ so that no escape can be faked. JSON output does not use
// this: JSON's own escaping keeps machines' view exact.
package termsafe

import (
	"unicode"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// String returns s made safe for a terminal.
func String(s string) string {
	if plain(s) {
		return s
	}
	return string(Append(nil, s))
}

// Message returns s made safe for a terminal, but for backslashes: for a
// message whose parts were escaped (String, or Go's %q) as it was put
// together, which would otherwise show each of their escapes doubled. What
// a part left raw, such as a name read from a recording, is escaped here.
func Message(s string) string {
	if plainMessage(s) {
		return s
	}
	return string(appendSafe(nil, s, false))
}

// Append appends s, made safe for a terminal, to dst.
func Append[T string | []byte](dst []byte, s T) []byte {
	return appendSafe(dst, s, true)
}

// appendSafe appends s made safe, its backslashes escaped when backslash.
func appendSafe[T string | []byte](dst []byte, s T, backslash bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			if c == '\\' && backslash {
				dst = append(dst, '\\')
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(len(s), i+utf8.UTFMax)]))
		switch {
		case r == utf8.RuneError && size <= 1:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r < 0x20 || r == 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case hidden(r) && r <= 0xffff:
			dst = append(dst, '\\', 'u')
			dst = appendHex(dst, uint32(r), 4)
		case hidden(r):
			dst = append(dst, '\\', 'U')
			dst = appendHex(dst, uint32(r), 8)
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// hidden reports whether r is not plainly visible: C1 controls, format
// characters (bidi controls and isolates, zero-width spaces and joiners,
// the BOM, tag characters), and line and paragraph separators.
func hidden(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
}

// appendHex appends the low digits hexadecimal digits of v.
func appendHex(dst []byte, v uint32, digits int) []byte {
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[v>>uint(shift)&0xf])
	}
	return dst
}

// plainMessage reports whether s is printable ASCII.
func plainMessage(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// plain reports whether s needs no escaping: printable ASCII without a
// backslash, the common case, checked without allocating.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
