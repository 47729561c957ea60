package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The node side of Kubernetes, as the kubelet drives it: Debian's
// containerd with its CRI plugin, at its default paths (where nspidtrace
// reads the runtime's state), driven by crictl. No cluster: pods run with
// the host's network, from images imported, never pulled.

// CRIEndpoint is containerd's socket at its default path.
const CRIEndpoint = "unix://" + containerdSocket

// PauseImage is the sandboxes' image, and the containers': busybox's
// applets, its command a long sleep, as the pause image's is.
const PauseImage = "docker.io/library/nspidtrace-test-pause:latest"

// criConfig is containerd's configuration: its CRI plugin with that pause
// image. restrict_oom_score_adj: where the bounding set lacks
// CAP_SYS_RESOURCE (this machine's), runc cannot lower a sandbox's
// oom_score_adj and fails with "can't get final child's PID from pipe".
const criConfig = `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "` + PauseImage + `"
  restrict_oom_score_adj = true
`

var criOnce = sync.OnceValue(startCRI)

// CRI makes sure containerd's CRI plugin answers at CRIEndpoint, starting
// containerd by hand the first time, and that PauseImage is imported.
// Without root, containerd or crictl, t is skipped by hand and fails in CI.
func CRI(t testing.TB) {
	t.Helper()
	Docker(t) // the pause image is made and saved with docker
	if err := criOnce(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CRI: %v", err)
		}
		t.Skipf("CRI: %v", err)
	}
}

// crictlPath finds crictl: on PATH, or where go install puts it.
func crictlPath() (string, error) {
	if p, err := exec.LookPath("crictl"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "crictl")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("crictl is not installed (make deps builds it with go install)")
}

func startCRI() error {
	for _, bin := range []string{"containerd", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (make deps installs containerd)", bin)
		}
	}
	crictl, err := crictlPath()
	if err != nil {
		return err
	}
	answers := func() bool { return exec.Command(crictl, "--runtime-endpoint", CRIEndpoint, "info").Run() == nil }
	if !answers() {
		if err := removeStaleSocket(containerdSocket); err != nil {
			return err
		}
		if _, err := os.Stat(containerdSocket); err == nil {
			return fmt.Errorf("a containerd at %s does not answer CRI requests: enable its CRI plugin, or stop it", CRIEndpoint)
		}
		dir := filepath.Join(os.TempDir(), "nspidtrace-test-containerd")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		config := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(config, []byte(criConfig), 0o600); err != nil {
			return err
		}
		if err := startDaemon(filepath.Join(dir, "containerd.log"), "containerd", []string{"--config", config}, answers); err != nil {
			return err
		}
	}
	if out, _ := exec.Command("ctr", "-n", "k8s.io", "images", "ls", "-q", "name=="+PauseImage).Output(); strings.TrimSpace(string(out)) != "" {
		return nil
	}
	return importPause()
}

// importPause makes PauseImage from TestImage's files with docker, and
// imports it into containerd's k8s.io namespace, where the CRI looks.
func importPause() error {
	id, err := exec.Command("docker", "create", TestImage, "true").Output()
	if err != nil {
		return fmt.Errorf("docker create: %w", err)
	}
	defer exec.Command("docker", "rm", strings.TrimSpace(string(id))).Run()
	script := fmt.Sprintf(`docker export %s | docker import --change 'CMD ["/bin/sleep","2147483647"]' - %s >/dev/null && docker save %s | ctr -n k8s.io images import -`,
		strings.TrimSpace(string(id)), PauseImage, PauseImage)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		return fmt.Errorf("make and import the pause image: %v: %s", err, out)
	}
	return nil
}

// Crictl runs crictl with args against CRIEndpoint and returns its trimmed
// output.
func Crictl(t testing.TB, args ...string) string {
	t.Helper()
	c := crictlCommand(t, append([]string{"--image-endpoint", CRIEndpoint}, args...)...)
	return output(t, c.Path, c.Args[1:]...)
}

// crictlCommand is crictl with args against CRIEndpoint.
func crictlCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	crictl, err := crictlPath()
	if err != nil {
		t.Fatal(err)
	}
	return exec.Command(crictl, append([]string{"--runtime-endpoint", CRIEndpoint}, args...)...)
}

// pidMode is CRI's NamespaceMode for the pod's pid namespace: POD (0),
// shared by its sandbox and containers, or CONTAINER (1), each its own.
func (s PodSpec) pidMode() int {
	if s.SharePID {
		return 0
	}
	return 1
}

// PodSpec is a pod to run: its Kubernetes namespace, name and UID, whether
// its containers share one pid namespace (shareProcessNamespace), and
// its containers' names, each running Cmd.
type PodSpec struct {
	Namespace, Name, UID string
	SharePID             bool
	Containers           []string
	Cmd                  []string
}

// Pod is a pod crictl runs: its sandbox's ID, its containers' IDs by name.
type Pod struct {
	Spec       PodSpec
	ID         string
	Containers map[string]string
	dir        string
}

// RunPod runs a pod as the kubelet would: its sandbox under a kubepods
// cgroup of its UID, with the host's network, then each container. It is
// removed at cleanup.
func RunPod(t testing.TB, spec PodSpec) *Pod {
	t.Helper()
	p := &Pod{Spec: spec, Containers: map[string]string{}, dir: t.TempDir()}
	nsOpts := map[string]any{"network": 2, "pid": spec.pidMode()} // network NODE
	sandbox := map[string]any{
		"metadata":      map[string]any{"name": spec.Name, "namespace": spec.Namespace, "uid": spec.UID, "attempt": 0},
		"log_directory": p.dir,
		"linux": map[string]any{
			"cgroup_parent":    "/kubepods/besteffort/pod" + spec.UID,
			"security_context": map[string]any{"namespace_options": nsOpts},
		},
	}
	p.ID = Crictl(t, "runp", writeJSON(t, p.dir, "pod.json", sandbox))
	t.Cleanup(func() {
		crictlCommand(t, "stopp", p.ID).Run()
		crictlCommand(t, "rmp", "-f", p.ID).Run()
	})
	for _, name := range spec.Containers {
		p.Containers[name] = p.Start(t, name, 0)
	}
	return p
}

// Start creates and starts container name of the pod, at attempt (the
// kubelet's restart count: it makes a new container for each), and returns
// its ID.
func (p *Pod) Start(t testing.TB, name string, attempt int) string {
	t.Helper()
	ctr := map[string]any{
		"metadata": map[string]any{"name": name, "attempt": attempt},
		"image":    map[string]any{"image": PauseImage},
		"command":  p.Spec.Cmd,
		"log_path": name + "-" + strconv.Itoa(attempt) + ".log",
		"linux": map[string]any{
			"security_context": map[string]any{"namespace_options": map[string]any{"network": 2, "pid": p.Spec.pidMode()}},
		},
	}
	file := writeJSON(t, p.dir, name+"-"+strconv.Itoa(attempt)+".json", ctr)
	id := Crictl(t, "create", p.ID, file, filepath.Join(p.dir, "pod.json"))
	Crictl(t, "start", id)
	return id
}

// Restart stops and removes container name and starts it again at the
// next attempt, as the kubelet restarts a container: a new container with
// the same name. It returns the new ID.
func (p *Pod) Restart(t testing.TB, name string, attempt int) string {
	t.Helper()
	Crictl(t, "stop", "--timeout", "1", p.Containers[name])
	Crictl(t, "rm", p.Containers[name])
	p.Containers[name] = p.Start(t, name, attempt)
	return p.Containers[name]
}

// PID is the host PID of container name's init, as crictl inspect says.
func (p *Pod) PID(t testing.TB, name string) int {
	t.Helper()
	pid, err := strconv.Atoi(Crictl(t, "inspect", "-o", "go-template", "--template", "{{.info.pid}}", p.Containers[name]))
	if err != nil || pid == 0 {
		t.Fatalf("crictl inspect %s: no pid (%v)", name, err)
	}
	return pid
}

// Exec starts cmd in container name with crictl exec, as kubectl exec
// does, and leaves it running until cleanup.
func (p *Pod) Exec(t testing.TB, name string, cmd ...string) {
	t.Helper()
	c := crictlCommand(t, append([]string{"exec", p.Containers[name]}, cmd...)...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
}

func writeJSON(t testing.TB, dir, name string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
