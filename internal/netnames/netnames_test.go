package netnames

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRef(t *testing.T) {
	for _, tt := range []struct {
		ref    string
		ino    uint32
		isRef  bool
		hasErr bool
	}{
		{"net:[4026532160]", 4026532160, true, false},
		{"4026532160", 4026532160, true, false},
		{"net:[4026532160", 0, true, true},
		{"net:[0]", 0, true, true},
		{"99999999999", 0, true, true},
		{"blue", 0, false, false},
		{"/run/netns/blue", 0, false, false},
		{"cni-1234", 0, false, false},
	} {
		ino, isRef, err := ParseRef(tt.ref)
		if ino != tt.ino || isRef != tt.isRef || (err != nil) != tt.hasErr {
			t.Errorf("ParseRef(%q) = %d, %v, %v; want %d, %v, error %v", tt.ref, ino, isRef, err, tt.ino, tt.isRef, tt.hasErr)
		}
	}
}

// TestScanSkipsWhatIsNoNamespace: an ip netns name whose mount is gone
// (a plain file, as a crashed `ip netns add` leaves) names nothing.
func TestScanSkipsWhatIsNoNamespace(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "run/netns"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "run/netns/stale"), nil, 0o644)
	if names := Scan(root); len(names) != 0 {
		t.Errorf("Scan found %v", names)
	}
	if _, err := Inode(filepath.Join(root, "run/netns/stale")); err == nil {
		t.Error("a plain file was taken for a network namespace")
	}
}

// TestInodeOfOwnNamespace: the inode of /proc/self/ns/net is the one
// stat reports, and a pid namespace file is not a network namespace.
func TestInodeOfOwnNamespace(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	ino, err := Inode("/proc/self/ns/net")
	if err != nil || ino != uint32(st.Ino) {
		t.Errorf("Inode = %d, %v; stat says %d", ino, err, st.Ino)
	}
	if _, err := Inode("/proc/self/ns/pid"); err == nil {
		t.Error("a pid namespace was taken for a network namespace")
	}
}
