package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// A socket nobody listens on goes; one with a listener, and a file that is
// not a socket, stay.
func TestRemoveStaleSocket(t *testing.T) {
	dir := t.TempDir()
	listen := func(name string) *net.UnixListener {
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, name), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		return l
	}
	stale := listen("stale.sock")
	stale.Close()
	live := listen("live.sock")
	defer live.Close()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"stale.sock", "live.sock", "plain", "absent"} {
		if err := removeStaleSocket(filepath.Join(dir, name)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for name, want := range map[string]bool{"stale.sock": false, "live.sock": true, "plain": true} {
		if _, err := os.Lstat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", name, err == nil, want)
		}
	}
}
