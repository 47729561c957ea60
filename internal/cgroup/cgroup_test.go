package cgroup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real mount tables: a cgroup v1 hybrid host (this project's machines), a
// pure cgroup v2 host, and a container with the host's cgroupfs mounted.
const (
	hybridMounts = `25 30 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 25 0:34 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,pids
37 25 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:21 - cgroup cgroup rw,cpu,cpuacct
`
	v2Mounts = `24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`
	nsMounts = `612 600 0:27 /.. /host/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw
`
	// docker run -v /sys:/sys on a hybrid host: the runtime's mount of the
	// container's own cgroup, then the host's over it.
	containerMounts = `124 116 0:35 /docker/22354fe0bca2 /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
137 129 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
125 116 0:36 /docker/22354fe0bca2 /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
`
	procCgroups = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
blkio	7	1	1
memory	4	49	1
devices	5	1	1
freezer	6	1	1
net_cls	0	1	1
perf_event	0	1	1
net_prio	0	1	1
hugetlb	0	1	1
pids	8	2	1
`
)

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name, mounts string
		want         Hierarchy
	}{
		{"hybrid: a v1 controller", hybridMounts, Hierarchy{Subsys: 11, Controller: "pids", ID: 8, Mount: "/sys/fs/cgroup/pids", Root: "/"}},
		{"v2", v2Mounts, Hierarchy{Subsys: Unified, Mount: "/sys/fs/cgroup", Root: "/"}},
		{"v2 in a cgroup namespace", nsMounts, Hierarchy{Subsys: Unified, Mount: "/host/sys/fs/cgroup", Root: "/.."}},
		{"v2 in a cgroup namespace, its own root mounted first", "611 600 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup rw\n" + nsMounts, Hierarchy{Subsys: Unified, Mount: "/host/sys/fs/cgroup", Root: "/.."}},
		{"a container given the host's /sys", containerMounts, Hierarchy{Subsys: 11, Controller: "pids", ID: 8, Mount: "/sys/fs/cgroup/pids", Root: "/"}},
	} {
		got, err := choose([]byte(tc.mounts), []byte(procCgroups))
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := choose([]byte("24 30 0:22 / /proc rw - proc proc rw\n"), nil); err != ErrNoHierarchy {
		t.Errorf("no cgroup mount: %v", err)
	}
	// A v1 controller mounted but missing from /proc/cgroups: an error, not
	// index 0 (cpuset), which would name the wrong cgroups.
	if _, err := choose([]byte(hybridMounts), []byte("#subsys_name\tx\ncpuset 1 1 1\n")); err == nil || !strings.Contains(err.Error(), "pids") {
		t.Errorf("pids not in /proc/cgroups: %v", err)
	}
}

// TestLineOf reads /proc/PID/cgroup the way the kernel side reads IDs: the
// v2 line for cgroup v2, the line of the chosen controller on cgroup v1
// (also when mounted with others), a path with ':' whole.
func TestLineOf(t *testing.T) {
	data := []byte("12:cpu,cpuacct:/docker/abc\n4:memory:/a:b\n3:pids:/system.slice/x.service\n1:name=systemd:/\n0::/user.slice\n")
	for _, tt := range []struct {
		h    Hierarchy
		want string
	}{
		{Hierarchy{Subsys: Unified}, "/user.slice"},
		{Hierarchy{Controller: "pids"}, "/system.slice/x.service"},
		{Hierarchy{Controller: "cpuacct"}, "/docker/abc"},
		{Hierarchy{Controller: "memory"}, "/a:b"},
	} {
		if got, ok := tt.h.lineOf(data); !ok || got != tt.want {
			t.Errorf("%v: %q, %v; want %q", tt.h, got, ok, tt.want)
		}
	}
	if got, ok := (Hierarchy{Controller: "blkio"}).lineOf(data); ok {
		t.Errorf("blkio, which the file lacks: %q", got)
	}
}

func TestUnescape(t *testing.T) {
	if got := unescape(`/mnt/with\040space\134x`); got != `/mnt/with space\x` {
		t.Errorf("unescape: %q", got)
	}
	if got := unescape(`/trailing\04`); got != `/trailing\04` {
		t.Errorf("a short escape is kept: %q", got)
	}
}

// TestMadeAndNamedBefore: an ID no longer found is named from the path
// the kernel side saw it made at, if it was made in this hierarchy and
// cgroup namespace; and a container whose runtime's files are gone keeps
// the name its ID had.
func TestMadeAndNamedBefore(t *testing.T) {
	host := t.TempDir()
	id := strings.Repeat("ab", 32)
	config := filepath.Join(host, "var/lib/docker/containers", id, "config.v2.json")
	if err := os.MkdirAll(filepath.Dir(config), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte(`{"Name":"/web"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(Hierarchy{Subsys: Unified, Mount: t.TempDir(), Root: "/"}, host)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.walk = true // IDs are looked for in the (empty) mount: none is found
	path := "/system.slice/docker-" + id + ".scope"

	r.Made(1, 0, r.cgroupNS, path)
	if cg := r.Cgroup(1); cg.Path != path || cg.Container == nil || cg.Container.Name != "web" {
		t.Errorf("a cgroup made here, then gone: %+v, want %s, container web", cg, path)
	}
	os.Remove(config) // docker rm: the name is on disk no more
	r.Made(2, 0, r.cgroupNS, path)
	if cg := r.Cgroup(2); cg.Container == nil || cg.Container.ID != id || cg.Container.Name != "web" {
		t.Errorf("the container made again, its files gone: %+v, want it named web as before", cg)
	}
	r.Made(3, 4, r.cgroupNS, path)     // a cgroup v1 hierarchy's
	r.Made(4, 0, r.cgroupNS+1, path)   // made in another cgroup namespace
	r.Made(5, 0, r.cgroupNS, "docker") // not a path
	for id := uint64(3); id <= 5; id++ {
		if cg := r.Cgroup(id); cg.Path != "" {
			t.Errorf("Made %d was taken: %+v", id, cg)
		}
	}
}
