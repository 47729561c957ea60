package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestImage is the image Docker tests run: a busybox root file system,
// imported (no registry is needed).
const TestImage = "nspidtrace-test-busybox:latest"

// testLabel marks the containers tests make: only those are removed.
const testLabel = "nspidtrace-test=1"

var dockerOnce = sync.OnceValue(startDocker)

// Docker makes sure a Docker engine answers and TestImage exists, starting
// dockerd by hand (no systemd here) the first time. Without root or Docker,
// t is skipped by hand and fails in CI.
func Docker(t testing.TB) {
	t.Helper()
	Require(t)
	if err := dockerOnce(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker: %v", err)
		}
		t.Skipf("docker: %v", err)
	}
}

func startDocker() error {
	for _, bin := range []string{"docker", "dockerd", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (make deps installs docker.io and busybox-static)", bin)
		}
	}
	answers := func() bool { return exec.Command("docker", "info").Run() == nil }
	if !answers() {
		if err := removeStaleSocket(containerdSocket); err != nil {
			return err
		}
		if err := removeStalePidfile("/var/run/docker.pid", "dockerd"); err != nil {
			return err
		}
		// No bridge, no iptables: the test containers need no network.
		if err := startDaemon(filepath.Join(os.TempDir(), "nspidtrace-test-dockerd.log"),
			"dockerd", []string{"--iptables=false", "--bridge=none"}, answers); err != nil {
			return err
		}
	}
	if exec.Command("docker", "image", "inspect", TestImage).Run() == nil {
		return nil
	}
	return importBusybox()
}

// importBusybox imports a root file system of busybox-static's applets.
func importBusybox() error {
	root, err := os.MkdirTemp("", "nspidtrace-rootfs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := busyboxRootfs(root); err != nil {
		return err
	}
	tar := exec.Command("tar", "-C", root, "-c", ".")
	imp := exec.Command("docker", "import", "-", TestImage)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		return err
	}
	out, err := imp.CombinedOutput()
	tar.Wait()
	if err != nil {
		return fmt.Errorf("docker import: %v: %s", err, out)
	}
	return nil
}

// busyboxRootfs makes root a root file system of busybox-static's applets.
func busyboxRootfs(root string) error {
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("chroot", root, "/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
		return fmt.Errorf("busybox --install (is it busybox-static?): %v: %s", err, out)
	}
	return nil
}

// DockerRun starts a container of TestImage with docker run -d, args
// before the image and cmd after it, and removes it at cleanup. It returns
// the container's full ID.
func DockerRun(t testing.TB, args []string, cmd ...string) string {
	t.Helper()
	full := append([]string{"run", "-d", "--network", "none", "--label", testLabel}, args...)
	full = append(append(full, TestImage), cmd...)
	id := DockerCmd(t, full...)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", id).Run() })
	return id
}

// RemoveTestContainer removes a container a previous run left with name,
// only if a test made it.
func RemoveTestContainer(t testing.TB, name string) {
	t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", `{{index .Config.Labels "nspidtrace-test"}}`, name).Output()
	if err != nil {
		return // no such container
	}
	if strings.TrimSpace(string(out)) != "1" {
		t.Fatalf("a container named %s exists and was not made by a test: remove or rename it", name)
	}
	DockerCmd(t, "rm", "-f", name)
}

// DockerCmd runs docker with args and returns its trimmed output.
func DockerCmd(t testing.TB, args ...string) string {
	t.Helper()
	return output(t, "docker", args...)
}

// output runs a command, failing t if it fails, and returns its trimmed
// standard output.
func output(t testing.TB, bin string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// DockerPID returns the host PID of a container's init, as docker inspect
// says.
func DockerPID(t testing.TB, name string) int {
	t.Helper()
	var pid int
	fmt.Sscan(DockerCmd(t, "inspect", "-f", "{{.State.Pid}}", name), &pid)
	if pid == 0 {
		t.Fatalf("container %s is not running", name)
	}
	return pid
}
