package container

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

const (
	id  = "59ae5c3e0b1f4a2c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	uid = "0f5b5a3e-2d5c-4b0a-9a1e-7e0d8c6d2a11"
)

// Cgroup paths as runtimes make them, cgroup v1 (per controller) and v2
// alike: the path below the hierarchy's root is the same shape in both.
func TestIdentify(t *testing.T) {
	uidSystemd := strings.ReplaceAll(uid, "-", "_")
	for _, tc := range []struct {
		path, runtime, pod string
		none               bool
	}{
		{path: "/docker/" + id, runtime: "docker"},                                                                    // docker, cgroupfs driver
		{path: "/system.slice/docker-" + id + ".scope", runtime: "docker"},                                            // docker, systemd driver
		{path: "/machine.slice/libpod-" + id + ".scope", runtime: "podman"},                                           // podman as root
		{path: "/machine.slice/libpod-" + id + ".scope/container", runtime: "podman"},                                 // podman with its own init cgroup
		{path: "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id + ".scope", runtime: "podman"}, // rootless
		{path: "/libpod_parent/libpod-" + id, runtime: "podman"},                                                      // podman, cgroupfs manager
		{path: "/machine.slice/libpod-conmon-" + id + ".scope", none: true},                                           // conmon runs beside its container
		{path: "/kubepods/burstable/pod" + uid + "/" + id, pod: uid},                                                  // kubelet, cgroupfs driver
		{path: "/kubepods/pod" + uid + "/" + id, pod: uid},                                                            // Guaranteed QoS
		{path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + id + ".scope", runtime: "containerd", pod: uid},
		{path: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uidSystemd + ".slice/crio-" + id + ".scope", runtime: "cri-o", pod: uid},
		{path: "/kubepods.slice/kubepods-pod" + uidSystemd + ".slice/crio-conmon-" + id + ".scope", none: true},
		{path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/docker-" + id + ".scope", runtime: "docker", pod: uid},
		{path: "/system.slice/nerdctl-" + id + ".scope", runtime: "containerd"},
		{path: "/default/" + id}, // containerd, cgroupfs, namespace "default"
		{path: "/", none: true},
		{path: "/user.slice/user-0.slice/session-4.scope", none: true},
		{path: "/system.slice/docker.service", none: true},
		{path: "/docker/" + strings.ToUpper(id), none: true},
		{path: "/docker/" + id[:63], none: true},
		{path: "/pod" + uid + "/" + id}, // not under kubepods: no pod
	} {
		c := Identify(tc.path)
		if tc.none {
			if c != nil {
				t.Errorf("%s: %+v, want no container", tc.path, c)
			}
			continue
		}
		if c == nil || c.ID != id || c.Runtime != tc.runtime {
			t.Errorf("%s: %+v, want %.12s of %q", tc.path, c, id, tc.runtime)
			continue
		}
		gotPod := ""
		if c.Pod != nil {
			gotPod = c.Pod.UID
		}
		if gotPod != tc.pod {
			t.Errorf("%s: pod UID %q, want %q", tc.path, gotPod, tc.pod)
		}
	}
	// A container inside a container: the inner one.
	inner := strings.Repeat("ab", 32)
	if c := Identify("/docker/" + id + "/docker/" + inner); c == nil || c.ID != inner {
		t.Errorf("nested: %+v, want %.12s", c, inner)
	}
}

// writeState lays out a runtime's files under root.
func writeState(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		from  events.Container
		want  events.Container
	}{
		{"docker", map[string]string{
			dockerContainers + "/" + id + "/config.v2.json": `{"ID":"` + id + `","Name":"/web","Config":{"Labels":{"app":"x"}}}`,
		}, events.Container{ID: id, Runtime: "docker"}, events.Container{ID: id, Name: "web", Runtime: "docker"}},
		{"dockershim pod", map[string]string{
			dockerContainers + "/" + id + "/config.v2.json": `{"Name":"/k8s_nginx_web-0_default_` + uid + `_0","Config":{"Labels":{"io.kubernetes.container.name":"nginx","io.kubernetes.pod.name":"web-0","io.kubernetes.pod.namespace":"default","io.kubernetes.pod.uid":"` + uid + `"}}}`,
		}, events.Container{ID: id}, events.Container{ID: id, Name: "nginx", Runtime: "docker", Pod: &events.Pod{Namespace: "default", Name: "web-0", UID: uid}}},
		{"containerd CRI", map[string]string{
			containerdTasks + "/k8s.io/" + id + "/config.json": `{"ociVersion":"1.1.0","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"nginx","io.kubernetes.cri.sandbox-name":"web-0","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-uid":"` + uid + `"}}`,
		}, events.Container{ID: id, Runtime: "containerd"}, events.Container{ID: id, Name: "nginx", Runtime: "containerd", Pod: &events.Pod{Namespace: "shop", Name: "web-0", UID: uid}}},
		{"docker's containerd bundle, data root elsewhere", map[string]string{
			containerdTasks + "/moby/" + id + "/config.json": `{"ociVersion":"1.1.0"}`,
		}, events.Container{ID: id}, events.Container{ID: id, Runtime: "docker"}},
		{"CRI-O", map[string]string{
			storageRun + "/" + id + "/userdata/config.json": `{"annotations":{"io.kubernetes.cri-o.ContainerID":"` + id + `","io.kubernetes.container.name":"db","io.kubernetes.pod.name":"db-1","io.kubernetes.pod.namespace":"data"}}`,
		}, events.Container{ID: id, Runtime: "cri-o", Pod: &events.Pod{UID: uid}}, events.Container{ID: id, Name: "db", Runtime: "cri-o", Pod: &events.Pod{Namespace: "data", Name: "db-1", UID: uid}}},
		{"podman", map[string]string{
			storageLib + "/" + id + "/userdata/config.json": `{"annotations":{"io.container.manager":"libpod"}}`,
			storageLib + "/containers.json":                 `[{"id":"` + strings.Repeat("0", 64) + `","names":["other"]},{"id":"` + id + `","names":["web","alias"]}]`,
		}, events.Container{ID: id, Runtime: "podman"}, events.Container{ID: id, Name: "web", Runtime: "podman"}},
		{"nothing on disk", nil, events.Container{ID: id, Runtime: "docker"}, events.Container{ID: id, Runtime: "docker"}},
		{"a hostile name is bounded", map[string]string{
			dockerContainers + "/" + id + "/config.v2.json": `{"Name":"/` + strings.Repeat(`\u202e\u001b[2J`, 200) + `"}`,
		}, events.Container{ID: id}, events.Container{ID: id, Name: strings.Repeat("\u202e\u001b[2J", 200)[:maxName], Runtime: "docker"}},
	} {
		root := t.TempDir()
		writeState(t, root, tc.files)
		c := tc.from
		State{Root: root}.Name(&c)
		if tc.name == "a hostile name is bounded" {
			tc.want.Name = clean(tc.want.Name)
		}
		if c.ID != tc.want.ID || c.Name != tc.want.Name || c.Runtime != tc.want.Runtime || (c.Pod == nil) != (tc.want.Pod == nil) || c.Pod != nil && *c.Pod != *tc.want.Pod {
			t.Errorf("%s: %+v (pod %+v), want %+v (pod %+v)", tc.name, c, c.Pod, tc.want, tc.want.Pod)
		}
	}
}

// A runtime file that is a link out of the root, a FIFO or huge names
// nothing, and blocks nothing.
func TestHostileState(t *testing.T) {
	root := t.TempDir()
	secret := filepath.Join(t.TempDir(), "config.v2.json")
	if err := os.WriteFile(secret, []byte(`{"Name":"/leaked"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, dockerContainers, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "config.v2.json")); err != nil {
		t.Fatal(err)
	}
	c := events.Container{ID: id}
	State{Root: root}.Name(&c)
	if c.Name == "leaked" {
		t.Error("a link out of the root was followed")
	}
}

func FuzzStateFiles(f *testing.F) {
	f.Add([]byte(`{"Name":"/web","Config":{"Labels":{"io.kubernetes.pod.name":"p"}}}`))
	f.Add([]byte(`{"annotations":{"io.kubernetes.cri.container-name":"c"}}`))
	f.Add([]byte(`[{"id":"` + id + `","names":["web"]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		root := t.TempDir()
		writeState(t, root, map[string]string{
			dockerContainers + "/" + id + "/config.v2.json":    string(b),
			containerdTasks + "/k8s.io/" + id + "/config.json": string(b),
			storageRun + "/" + id + "/userdata/config.json":    string(b),
			storageLib + "/containers.json":                    string(b),
		})
		c := events.Container{ID: id}
		State{Root: root}.Name(&c)
		if len(c.Name) > maxName || !utf8.ValidString(c.Name) {
			t.Fatalf("name %q: over the bound or not UTF-8", c.Name)
		}
		if c.Pod != nil && (len(c.Pod.Name) > maxName || len(c.Pod.Namespace) > maxName || len(c.Pod.UID) > maxName) {
			t.Fatalf("pod names over the bound: %+v", c.Pod)
		}
	})
}
