package users

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/safefile"
)

func TestParse(t *testing.T) {
	names := Parse([]byte("root:x:0:0:root:/root:/bin/sh\n" +
		"# a comment:x:5:5\n" +
		"daemon:x:1:1::/:/bin/false\r\n" +
		"toor:x:0:0::/:/bin/sh\n" + // a second name for 0: getpwuid gives the first
		"bad:x:notanumber:1\n" +
		"short:x\n" +
		":x:7:7\n" +
		"big:x:4294967296:0\n" +
		"\x1b]0;pwned\x07:x:1000:1000::/:/bin/sh\n" +
		strings.Repeat("n", 100) + ":x:1001:1001\n" +
		"last:x:65534:65534"))
	want := Names{0: "root", 1: "daemon", 1000: "\x1b]0;pwned\x07", 1001: strings.Repeat("n", maxName), 65534: "last"}
	if len(names) != len(want) {
		t.Errorf("got %v, want %v", names, want)
	}
	for id, name := range want {
		if names[id] != name {
			t.Errorf("uid %d: %q, want %q", id, names[id], name)
		}
	}
}

// TestReadStaysInRoot: a container's passwd is read inside its root, never
// through a link out of it, never blocking on a FIFO, never whole when huge.
func TestReadStaysInRoot(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := filepath.Join(etc, "passwd")

	// A link to the host's shadow file resolves to the root's own.
	os.WriteFile(filepath.Join(etc, "shadow"), []byte("inside:x:7:7\n"), 0o600)
	if err := os.Symlink("/etc/shadow", passwd); err != nil {
		t.Fatal(err)
	}
	names, err := Read(root)
	if err != nil || names[7] != "inside" || len(names) != 1 {
		t.Errorf("through /etc/shadow: %v, %v; want the root's own file", names, err)
	}
	os.Remove(passwd)
	os.Symlink("../../../../../../etc/passwd", passwd)
	if names, err := Read(root); err == nil && names[0] == "root" {
		t.Errorf("a relative link out of the root read the host's passwd: %v", names)
	}

	// A FIFO nobody writes to: refused at once.
	os.Remove(passwd)
	if err := unix.Mkfifo(passwd, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(root); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO read as a passwd file")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("reading a FIFO blocked")
	}

	// A 10 GB sparse file: refused without reading it.
	os.Remove(passwd)
	f, err := os.Create(passwd)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(10 << 30)
	f.Close()
	start := time.Now()
	if _, err := Read(root); err == nil || !strings.Contains(err.Error(), safefile.ErrTooLarge.Error()) {
		t.Errorf("a 10 GB passwd: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a 10 GB passwd took %v", d)
	}
}

func TestInside(t *testing.T) {
	ranges := []IDRange{{0, 100000, 65536}, {70000, 1000, 1}}
	for _, tc := range []struct {
		outside, inside uint32
		err             error
	}{
		{100000, 0, nil}, {165535, 65535, nil}, {165536, 0, ErrUnmapped}, {1000, 70000, nil}, {0, 0, ErrUnmapped},
		{4294967295, 0, ErrUnmapped},
	} {
		got, err := Inside(ranges, tc.outside)
		if got != tc.inside || err != tc.err {
			t.Errorf("Inside(%d) = %d, %v; want %d, %v", tc.outside, got, err, tc.inside, tc.err)
		}
	}
	host, err := ReadUIDMap("/proc", os.Getpid())
	if err != nil || len(host) != 1 || host[0] != (IDRange{0, 0, 4294967295}) {
		t.Errorf("the host's own uid_map: %v, %v", host, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"))
	f.Add([]byte("a:b:c:d\n::::\n:x:1:1\n#:x:2:2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for id, name := range Parse(data) {
			if name == "" || len(name) > maxName || strings.ContainsAny(name, ":\n") {
				t.Errorf("uid %d named %q", id, name)
			}
		}
	})
}
