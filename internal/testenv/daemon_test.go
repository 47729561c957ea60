package testenv

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// A pid file whose PID is another program's goes; one naming the program
// stays.
func TestRemoveStalePidfile(t *testing.T) {
	dir := t.TempDir()
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	comm := strings.TrimSpace(string(self))
	for _, c := range []struct {
		name, content, comm string
		stays               bool
	}{
		{"ours", strconv.Itoa(os.Getpid()), comm, true},
		{"another program's", strconv.Itoa(os.Getpid()), "dockerd", false},
		{"no process", "0", "dockerd", false},
		{"not a PID", "x", "dockerd", false},
	} {
		path := filepath.Join(dir, "pid")
		if err := os.WriteFile(path, []byte(c.content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := removeStalePidfile(path, c.comm); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if _, err := os.Stat(path); (err == nil) != c.stays {
			t.Errorf("%s: the pid file stays %v, want %v", c.name, err == nil, c.stays)
		}
	}
	if err := removeStalePidfile(filepath.Join(dir, "absent"), "dockerd"); err != nil {
		t.Errorf("no pid file: %v", err)
	}
}
