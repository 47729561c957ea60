package describe

import "testing"

func TestCapsCompact(t *testing.T) {
	const full = uint64(1)<<41 - 1
	for _, tt := range []struct {
		set  uint64
		want string
	}{
		{0, "none"},
		{full, "all"},
		{full &^ (1<<21 | 1<<24), "all-sys_admin,sys_resource"},
		{1<<0 | 1<<13, "chown,net_raw"},
		{1 << 50, "cap_50"}, // a bit past the names this build has
	} {
		if got := CapsCompact(tt.set, full); got != tt.want {
			t.Errorf("CapsCompact(%#x) = %q, want %q", tt.set, got, tt.want)
		}
	}
}
