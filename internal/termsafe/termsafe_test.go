package termsafe

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"sleep":                       "sleep",
		"nginx -g daemon off;":        "nginx -g daemon off;",
		"évian ☃ 日本":                  "évian ☃ 日本",
		"evil\x1b]0;pwned\x07\x1b[2J": `evil\x1b]0;pwned\x07\x1b[2J`,
		"\x1b[31mRED":                 `\x1b[31mRED`,
		"a\tb\nc\rd\x00e\x7f":         `a\tb\nc\x0dd\x00e\x7f`,
		"c1 \u009b31m":                `c1 \u009b31m`,
		"file\u202egnp.exe":           `file\u202egnp.exe`,
		"zero\u200bwidth\ufeff":       `zero\u200bwidth\ufeff`,
		"isolate\u2066x\u2069":        `isolate\u2066x\u2069`,
		"line\u2028sep":               `line\u2028sep`,
		"tag\U000E0041":               `tag\U000e0041`,
		"bad\xff\xfeutf8":             `bad\xff\xfeutf8`,
		"cut\xe2\x82":                 `cut\xe2\x82`,
		`C:\x1b is not an escape`:     `C:\\x1b is not an escape`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzString checks what a terminal receives: valid UTF-8 with no control,
// format or separator character, and nothing lost: every input maps to a
// different output.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "sleep", "\x1b[2J", "\u202e", "\xff", `\x41`, "\U000E0041", "a\u0085b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if !utf8.ValidString(out) {
			t.Fatalf("String(%q) = %q is not valid UTF-8", s, out)
		}
		for _, r := range out {
			if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
				t.Fatalf("String(%q) = %q holds %U", s, out, r)
			}
		}
		if s != out && !strings.Contains(out, `\`) {
			t.Fatalf("String(%q) = %q changed it without a visible escape", s, out)
		}
		if unescape(out) != s {
			t.Fatalf("String(%q) = %q does not read back", s, out)
		}
	})
}

// unescape inverts String, so the fuzzer can check that no two inputs look
// the same on a terminal.
func unescape(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		i++
		switch s[i] {
		case '\\':
			b = append(b, '\\')
		case 't':
			b = append(b, '\t')
		case 'n':
			b = append(b, '\n')
		case 'x':
			b = append(b, byte(hex(s[i+1:i+3])))
			i += 2
		case 'u':
			b = utf8.AppendRune(b, rune(hex(s[i+1:i+5])))
			i += 4
		case 'U':
			b = utf8.AppendRune(b, rune(hex(s[i+1:i+9])))
			i += 8
		}
	}
	return string(b)
}

func hex(s string) int {
	n := 0
	for _, c := range s {
		n = n*16 + strings.IndexRune("0123456789abcdef", c)
	}
	return n
}

func BenchmarkStringPlain(b *testing.B) {
	for range b.N {
		String("kworker/u4:1-events_unbound")
	}
}

// TestMessage: a message keeps the escapes its parts already have, and
// loses the power of anything raw it holds.
func TestMessage(t *testing.T) {
	for in, want := range map[string]string{
		`--from "a\x1bb": no such file`:         `--from "a\x1bb": no such file`,
		"runtimes seen: do\x1b]0;pwned\x07cker": `runtimes seen: do\x1b]0;pwned\x07cker`,
		"file d/\x9b2Jx.ndjson: \u202etxt.exe":  `file d/\x9b2Jx.ndjson: \u202etxt.exe`,
		"line 3: longer than 1048576 bytes":     "line 3: longer than 1048576 bytes",
	} {
		if got := Message(in); got != want {
			t.Errorf("Message(%q) = %q, want %q", in, got, want)
		}
	}
}
