package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/safefile"
)

// Where runtimes keep a container's state, relative to the host's root.
const (
	dockerContainers = "/var/lib/docker/containers"                     // ID/config.v2.json
	containerdTasks  = "/run/containerd/io.containerd.runtime.v2.task"  // NAMESPACE/ID/config.json
	storageRun       = "/run/containers/storage/overlay-containers"     // ID/userdata/config.json (CRI-O)
	storageLib       = "/var/lib/containers/storage/overlay-containers" // containers.json (Podman, CRI-O)
)

// Bounds on what is read: a runtime's file that is larger was not written
// by the runtime alone.
const (
	maxConfig     = 4 << 20  // one container's config
	maxContainers = 32 << 20 // c/storage's list of every container
	maxName       = 253      // a DNS name, as Kubernetes bounds names
)

// Annotations and labels that carry Kubernetes names: CRI-O's and
// dockershim's (io.kubernetes.*), and containerd CRI's.
var (
	podNameKeys       = []string{"io.kubernetes.pod.name", "io.kubernetes.cri.sandbox-name"}
	podNamespaceKeys  = []string{"io.kubernetes.pod.namespace", "io.kubernetes.cri.sandbox-namespace"}
	podUIDKeys        = []string{"io.kubernetes.pod.uid", "io.kubernetes.cri.sandbox-uid"}
	containerNameKeys = []string{"io.kubernetes.container.name", "io.kubernetes.cri.container-name", "nerdctl/name"}
	// criContainerType is containerd CRI's "sandbox" or "container".
	criContainerType = "io.kubernetes.cri.container-type"
)

// State reads the names runtimes keep on disk under a host root ("/", or
// where a container running nspidtrace mounts the host).
type State struct {
	Root string
}

// Name completes c (from Identify) with what the runtime that owns it keeps
// on disk: its name, its runtime, its pod's names. What is not found stays
// as it was; nothing here fails loudly, as a name is a nicety.
func (s State) Name(c *events.Container) {
	if c == nil || !IsID(c.ID) {
		return
	}
	_ = s.NameErr(c)
}

// NameErr is Name, and says when a runtime's files could not be read for
// want of a resource (descriptors, memory): then c's name is not known
// rather than absent, and the caller should ask again later.
func (s State) NameErr(c *events.Container) error {
	if c == nil || !IsID(c.ID) {
		return nil
	}
	var starved error
	for _, find := range []func(*events.Container) (bool, error){s.docker, s.containerd, s.storage} {
		found, err := find(c)
		if found {
			return nil
		}
		if starved == nil && Exhausted(err) {
			starved = err
		}
	}
	return starved
}

// Exhausted reports whether err is the system running out of something
// (descriptors, memory) rather than a file's absence: a read that can
// succeed later.
func Exhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ENOBUFS)
}

// docker reads Docker's config.v2.json.
func (s State) docker(c *events.Container) (bool, error) {
	b, err := s.read(path.Join(dockerContainers, c.ID, "config.v2.json"), maxConfig)
	if err != nil {
		return false, err
	}
	var cfg struct {
		Name   string
		Config struct{ Labels map[string]string }
	}
	if json.Unmarshal(b, &cfg) != nil {
		return false, nil
	}
	c.Runtime = "docker"
	c.Name = clean(strings.TrimPrefix(cfg.Name, "/"))
	applyKubernetes(c, cfg.Config.Labels)
	return true, nil
}

// containerd reads the OCI bundle containerd's shim keeps in each namespace
// (k8s.io for Kubernetes, moby for Docker, default for nerdctl).
func (s State) containerd(c *events.Container) (bool, error) {
	dir, err := os.Open(path.Join(s.root(), containerdTasks))
	if err != nil {
		return false, err
	}
	namespaces, _ := dir.Readdirnames(64)
	dir.Close()
	var last error
	for _, ns := range namespaces {
		b, err := s.read(path.Join(containerdTasks, ns, c.ID, "config.json"), maxConfig)
		if err != nil {
			last = err
			continue
		}
		if ns == "moby" {
			c.Runtime = "docker"
		} else if c.Runtime == "" {
			c.Runtime = "containerd"
		}
		applyKubernetes(c, ociAnnotations(b))
		return true, nil
	}
	return false, last
}

// storage reads containers/storage, shared by CRI-O and Podman: CRI-O's
// bundle annotations, then the names in containers.json.
func (s State) storage(c *events.Container) (bool, error) {
	found := false
	var last error
	for _, dir := range []string{storageRun, storageLib} {
		b, err := s.read(path.Join(dir, c.ID, "userdata", "config.json"), maxConfig)
		if err != nil {
			last = err
			continue
		}
		a := ociAnnotations(b)
		if c.Runtime == "" {
			c.Runtime = "podman"
			if _, ok := a["io.kubernetes.cri-o.ContainerID"]; ok {
				c.Runtime = "cri-o"
			}
		}
		applyKubernetes(c, a)
		found = true
		break
	}
	if c.Name != "" {
		return found, nil
	}
	b, err := s.read(path.Join(storageLib, "containers.json"), maxContainers)
	if err != nil {
		return found, err
	}
	if name, ok := storageName(b, c.ID); ok {
		c.Name = name
		if c.Runtime == "" {
			c.Runtime = "podman"
		}
		return true, nil
	}
	return found, last
}

// storageName finds id's first name in c/storage's containers.json.
func storageName(b []byte, id string) (string, bool) {
	var list []struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	}
	if json.Unmarshal(b, &list) != nil {
		return "", false
	}
	for _, e := range list {
		if e.ID == id && len(e.Names) > 0 {
			return clean(e.Names[0]), true
		}
	}
	return "", false
}

// ociAnnotations returns an OCI runtime spec's annotations (nil when it is
// not one).
func ociAnnotations(b []byte) map[string]string {
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &spec) != nil {
		return nil
	}
	return spec.Annotations
}

// SandboxName names a pod's sandbox container, which runs its pause
// process: NAMESPACE/POD/POD.
const SandboxName = "POD"

// applyKubernetes takes the container's and its pod's names from labels or
// annotations, where a Kubernetes runtime left them.
func applyKubernetes(c *events.Container, kv map[string]string) {
	if name := first(kv, containerNameKeys); name != "" {
		c.Name = name
	} else if kv[criContainerType] == "sandbox" {
		// A pod's sandbox (its pause process) has no name of its own:
		// the kubelet's dockershim called it POD, as cri-dockerd does.
		c.Name = SandboxName
	}
	ns, pod, uid := first(kv, podNamespaceKeys), first(kv, podNameKeys), first(kv, podUIDKeys)
	if ns == "" && pod == "" && uid == "" {
		return
	}
	if c.Pod == nil {
		c.Pod = &events.Pod{}
	}
	c.Pod.Namespace, c.Pod.Name = ns, pod
	if c.Pod.UID == "" {
		c.Pod.UID = uid
	}
}

func first(kv map[string]string, keys []string) string {
	for _, k := range keys {
		if v := clean(kv[k]); v != "" {
			return v
		}
	}
	return ""
}

// clean bounds a name from a runtime's file and makes it valid UTF-8. It
// stays hostile: text output escapes it, JSON encodes it.
func clean(s string) string {
	if len(s) > maxName {
		s = s[:maxName]
	}
	return string(bytes.ToValidUTF8([]byte(s), []byte(string(utf8.RuneError))))
}

func (s State) root() string {
	if s.Root == "" {
		return "/"
	}
	return s.Root
}

func (s State) read(p string, limit int64) ([]byte, error) {
	return safefile.ReadInRoot(s.root(), p, limit)
}

// maxStopped bounds how many of Docker's containers Stopped reads.
const maxStopped = 4096

// Stopped finds a container that arg names (its name, full ID or an ID
// prefix) among those Docker keeps on disk that are not running: to tell
// a stopped container from a name nothing has. It returns the container
// and when it finished (zero when not known); nil when none is found.
func (s State) Stopped(arg string) (*events.Container, time.Time) {
	dir, err := os.Open(path.Join(s.root(), dockerContainers))
	if err != nil {
		return nil, time.Time{}
	}
	ids, _ := dir.Readdirnames(maxStopped)
	dir.Close()
	for _, id := range ids {
		if !IsID(id) {
			continue
		}
		b, err := s.read(path.Join(dockerContainers, id, "config.v2.json"), maxConfig)
		if err != nil {
			continue
		}
		var cfg struct {
			Name  string
			State struct {
				Running    bool
				FinishedAt time.Time
			}
			Config struct{ Labels map[string]string }
		}
		if json.Unmarshal(b, &cfg) != nil || cfg.State.Running {
			continue
		}
		c := &events.Container{ID: id, Name: clean(strings.TrimPrefix(cfg.Name, "/")), Runtime: "docker"}
		applyKubernetes(c, cfg.Config.Labels)
		if c.Matches(arg) {
			return c, cfg.State.FinishedAt
		}
	}
	return nil, time.Time{}
}
