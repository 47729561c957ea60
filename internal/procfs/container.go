package procfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// ErrAmbiguous marks a container ID prefix that more than one container has.
var ErrAmbiguous = errors.New("ambiguous container ID prefix")

// containerIDLen is the length of a container ID as docker, containerd,
// CRI-O and podman write it: 64 hexadecimal digits.
const containerIDLen = 64

// ContainerIDOf returns the container ID in a cgroup path such as
// /docker/ID, /system.slice/docker-ID.scope, .../cri-containerd-ID.scope,
// .../crio-ID.scope or .../libpod-ID.scope, or "".
func ContainerIDOf(cgroupPath string) string {
	parts := strings.Split(cgroupPath, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.TrimSuffix(parts[i], ".scope")
		if j := strings.LastIndexAny(p, "-:"); j >= 0 {
			p = p[j+1:]
		}
		if isContainerID(p) {
			return p
		}
	}
	return ""
}

func isContainerID(s string) bool {
	if len(s) != containerIDLen {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Cgroups returns process pid's cgroup membership as procfs at root shows
// it (/proc/PID/cgroup: one line per hierarchy, a single 0:: line on
// cgroup v2), for comparing two processes.
func Cgroups(root string, pid uint32) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return "", ErrNoProcess
	}
	return string(b), err
}

// ContainerID returns the ID of the container process pid is in, from its
// cgroups in procfs at root, or "" when it is in none.
func ContainerID(root string, pid uint32) (string, error) {
	f, err := os.Open(filepath.Join(root, strconv.FormatUint(uint64(pid), 10), "cgroup"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", ErrNoProcess
		}
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		fields := strings.SplitN(sc.Text(), ":", 3)
		if len(fields) == 3 {
			if id := ContainerIDOf(fields[2]); id != "" {
				return id, nil
			}
		}
	}
	return "", sc.Err()
}

// Containers maps each live process of tree to its container ID, for those
// in a container.
func Containers(root string, tree *pidmap.Tree) map[*pidmap.Proc]string {
	ids := make(map[*pidmap.Proc]string)
	tree.Walk(func(p *pidmap.Proc, _ int) {
		if id, err := ContainerID(root, p.PID); err == nil && id != "" {
			ids[p] = id
		}
	})
	return ids
}

// ErrNoContainer means no running container matches a --container argument.
var ErrNoContainer = errors.New("no running container matches")

// ResolveContainer returns the one container ID among ids that starts with
// prefix, as docker accepts a unique prefix. It wraps ErrNoContainer when no
// running container matches and ErrAmbiguous when several do.
func ResolveContainer(ids map[*pidmap.Proc]string, prefix string) (string, error) {
	lower := strings.ToLower(prefix)
	if lower == "" {
		return "", fmt.Errorf("%w %q", ErrNoContainer, prefix)
	}
	found := ""
	for _, id := range ids {
		if !strings.HasPrefix(id, lower) || id == found {
			continue
		}
		if found != "" {
			return "", fmt.Errorf("container %q: %w (%.12s, %.12s, …)", prefix, ErrAmbiguous, found, id)
		}
		found = id
	}
	if found == "" {
		return "", fmt.Errorf("%w %q (give a running container's ID or a unique prefix of it, as docker ps shows)", ErrNoContainer, prefix)
	}
	return found, nil
}

// ContainerNamespace returns the pid namespace of a container's processes:
// the shallowest among them, that of its init.
func ContainerNamespace(ids map[*pidmap.Proc]string, id string) *pidmap.PidNS {
	var ns *pidmap.PidNS
	for p, pid := range ids {
		if pid == id && (ns == nil || p.NS().Level < ns.Level) {
			ns = p.NS()
		}
	}
	return ns
}
