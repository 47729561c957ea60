package safefile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadInRoot(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "shadow")
	if err := os.WriteFile(secret, []byte("root:secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/big"), []byte(strings.Repeat("x", 2000)), 0o644))
	must(os.Symlink(secret, filepath.Join(root, "etc/abs-link")))
	must(os.Symlink("../../../../../../../.."+secret, filepath.Join(root, "etc/rel-link")))
	must(os.Symlink("passwd", filepath.Join(root, "etc/inner-link")))
	must(syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o644))

	b, err := ReadInRoot(root, "/etc/passwd", 1024)
	if err != nil || !strings.HasPrefix(string(b), "root:x:0") {
		t.Fatalf("passwd: %q, %v", b, err)
	}
	if b, err := ReadInRoot(root, "etc/inner-link", 1024); err != nil || !strings.HasPrefix(string(b), "root:x:0") {
		t.Errorf("a link inside the root: %q, %v", b, err)
	}
	for _, p := range []string{"/etc/abs-link", "/etc/rel-link"} {
		// Resolved inside root, the link's target does not exist there.
		if b, err := ReadInRoot(root, p, 1024); err == nil || strings.Contains(string(b), "secret") {
			t.Errorf("%s escaped the root: %q, %v", p, b, err)
		}
	}
	if _, err := ReadInRoot(root, "/etc/fifo", 1024); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a FIFO: %v, want ErrNotRegular (and no blocking)", err)
	}
	if _, err := ReadInRoot(root, "/etc", 1024); !errors.Is(err, ErrNotRegular) {
		t.Errorf("a directory: %v, want ErrNotRegular", err)
	}
	if _, err := ReadInRoot(root, "/etc/big", 1000); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a file over the bound: %v, want ErrTooLarge", err)
	}
	if b, err := ReadInRoot(root, "/etc/big", 2000); err != nil || len(b) != 2000 {
		t.Errorf("a file at the bound: %d bytes, %v", len(b), err)
	}
}
