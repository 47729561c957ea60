package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// imageRunArgs is how docs/kubernetes.md runs the image under Docker: the
// host's pid and cgroup namespaces and /sys, read-only, with capabilities
// instead of --privileged. Docker 20.10 knows no CAP_BPF or CAP_PERFMON:
// SYS_ADMIN stands for both.
var imageRunArgs = []string{"--network", "none", "--pid=host", "--cgroupns=host",
	"-v", "/sys:/sys:ro", "-v", "/var/lib/docker/containers:/var/lib/docker/containers:ro",
	"--cap-drop", "ALL", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_PTRACE"}

// buildImage builds deploy/Dockerfile from the test binary, as make image
// does from make build's, and returns its tag.
func buildImage(t *testing.T) string {
	t.Helper()
	ctx := t.TempDir()
	data, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "nspidtrace"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	const tag = "nspidtrace-test-image:e2e"
	dockerfile, _ := filepath.Abs("../../deploy/Dockerfile")
	testenv.DockerCmd(t, "build", "-q", "-f", dockerfile, "--build-arg", "VERSION=test", "-t", tag, ctx)
	return tag
}

// TestImageTracesTheHost runs the image with the host's pid namespace and
// checks its feed against /proc for a process three pid namespaces deep:
// host PIDs at level 0 and every level below, as the binary on the host.
func TestImageTracesTheHost(t *testing.T) {
	testenv.Require(t)
	testenv.Docker(t)
	image := buildImage(t)
	name := uniqueName("nspidtrace-image")
	testenv.RemoveTestContainer(t, name)
	run := append([]string{"run", "-d", "--name", name, "--label", "nspidtrace-test=1"}, imageRunArgs...)
	run = append(run, image, "trace", "--host", "node-e2e")
	testenv.DockerCmd(t, run...)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	logs := func() (stdout, stderr string) {
		var out, errb bytes.Buffer
		cmd := exec.Command("docker", "logs", name)
		cmd.Stdout, cmd.Stderr = &out, &errb
		cmd.Run()
		return out.String(), errb.String()
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, stderr := logs()
		if strings.Contains(stderr, "tracing started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image did not start tracing: %s", stderr)
		}
	}

	const depth = 3
	root, truth := runNested(t, depth)
	time.Sleep(300 * time.Millisecond)
	// docker stop sends SIGTERM: the trace flushes and exits 0.
	testenv.DockerCmd(t, "stop", "-t", "10", name)
	if code := testenv.DockerCmd(t, "inspect", "-f", "{{.State.ExitCode}}", name); code != "0" {
		_, stderr := logs()
		t.Fatalf("the traced container exited %s: %s", code, stderr)
	}
	stdout, _ := logs()
	feed := filepath.Join(t.TempDir(), "feed.ndjson")
	os.WriteFile(feed, []byte(stdout), 0o600)
	all := readLines(t, feed)
	for _, l := range all {
		if l.Host != "node-e2e" {
			t.Fatalf("a line without --host: %+v", l)
		}
	}
	lines := subtree(all, root)
	if len(truth) != depth+2 {
		t.Fatalf("/proc shows %d processes, want %d", len(truth), depth+2)
	}
	exits := checkLifecycle(t, lines, truth)
	for pid, tr := range truth {
		if tr.CommString() == "sh" && exits[pid].ExitCode != 7 {
			t.Errorf("sh's exit: %+v, want code 7", exits[pid])
		}
		if tr.CommString() != "unshare" && tr.Levels != depth+1 {
			t.Errorf("%s has %d levels in /proc, want %d", tr.CommString(), tr.Levels, depth+1)
		}
	}
}
