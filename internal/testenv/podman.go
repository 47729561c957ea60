package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// podmanRootfs is a busybox root file system podman runs with --rootfs.
var podmanRootfs = sync.OnceValues(func() (string, error) {
	for _, bin := range []string{"podman", "runc", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "", fmt.Errorf("%s is not installed (make deps installs podman, runc and busybox-static)", bin)
		}
	}
	root := filepath.Join(os.TempDir(), "nspidtrace-test-podman-rootfs")
	if _, err := os.Stat(filepath.Join(root, "bin/sleep")); err == nil {
		return root, nil
	}
	return root, busyboxRootfs(root)
})

// Podman skips t (fails it in CI) unless podman can run containers.
func Podman(t testing.TB) {
	t.Helper()
	Require(t)
	if _, err := podmanRootfs(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("podman: %v", err)
		}
		t.Skipf("podman: %v", err)
	}
}

// podmanArgs are podman's global flags here: no systemd (cgroupfs), runc,
// whose rlimits need no CAP_SYS_RESOURCE when they are low.
var podmanArgs = []string{"--cgroup-manager=cgroupfs", "--runtime", "runc"}

// PodmanRun starts a podman container named name running cmd and removes
// it at cleanup. It returns the container's full ID.
func PodmanRun(t testing.TB, name string, cmd ...string) string {
	t.Helper()
	root, err := podmanRootfs()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-d", "--name", name, "--network", "none", "--label", testLabel,
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--rootfs", root}
	id := PodmanCmd(t, append(args, cmd...)...)
	t.Cleanup(func() { exec.Command("podman", append(podmanArgs, "rm", "-f", "-t", "0", id)...).Run() })
	return id
}

// PodmanCmd runs podman with args and returns its trimmed output.
func PodmanCmd(t testing.TB, args ...string) string {
	t.Helper()
	return output(t, "podman", append(podmanArgs[:len(podmanArgs):len(podmanArgs)], args...)...)
}
