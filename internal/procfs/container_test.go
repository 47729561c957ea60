package procfs

import (
	"errors"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

const (
	idA = "4c01db0b339c6d9b7dbe6a64ac9ffe4fd8a5e8a7f2c3d1e0b9a8c7d6e5f40312"
	idB = "4c02aa0b339c6d9b7dbe6a64ac9ffe4fd8a5e8a7f2c3d1e0b9a8c7d6e5f40312"
)

func TestContainerIDOf(t *testing.T) {
	for path, want := range map[string]string{
		"/docker/" + idA:                         idA,
		"/system.slice/docker-" + idA + ".scope": idA,
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-" + idA + ".scope": idA,
		"/machine.slice/libpod-" + idA + ".scope/container":                                                         idA,
		"/crio-" + idA + ".scope":                       idA,
		"/user.slice/user-1000.slice/session-2.scope":   "",
		"/process_api/674422c35a01e31f2a1b8139b32a27c6": "",
		"/": "",
	} {
		if got := ContainerIDOf(path); got != want {
			t.Errorf("ContainerIDOf(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestResolveContainer(t *testing.T) {
	ids := map[*pidmap.Proc]string{{PID: 1}: idA, {PID: 2}: idA, {PID: 3}: idB}
	if id, err := ResolveContainer(ids, "4C01"); err != nil || id != idA {
		t.Errorf("unique prefix: %q, %v", id, err)
	}
	if _, err := ResolveContainer(ids, "4c0"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("shared prefix: %v, want ErrAmbiguous", err)
	}
	// A name (not looked up here), a stopped container's ID, too long a
	// prefix: none is a running container.
	for _, none := range []string{"ffff", "web", "", idA + "0"} {
		if _, err := ResolveContainer(ids, none); !errors.Is(err, ErrNoContainer) {
			t.Errorf("ResolveContainer(%q): %v, want ErrNoContainer", none, err)
		}
	}
}
