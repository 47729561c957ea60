// Package container tells which container a cgroup belongs to, and what its
// runtime calls it: the container's ID, runtime and Kubernetes pod UID from
// the cgroup path, and its name and pod names from the state the runtime
// keeps on disk (Docker, containerd, CRI-O, Podman). No daemon is asked.
//
// Everything read from a runtime's state is influenced by the container's
// users (names, labels, annotations): files are read bounded, never through
// a symbolic link, and parsed defensively.
package container

import (
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// idLen is the length of a container ID as Docker, containerd, CRI-O and
// Podman make them: 64 hexadecimal digits.
const idLen = 64

// scopePrefixes name the runtime from a systemd scope's prefix
// (PREFIX-ID.scope); the cgroupfs drivers leave the bare ID.
var scopePrefixes = []struct{ prefix, runtime string }{
	{"docker-", "docker"},
	{"cri-containerd-", "containerd"},
	{"nerdctl-", "containerd"},
	{"crio-", "cri-o"},
	{"libpod-", "podman"},
}

// Identify returns the container a cgroup path belongs to, as far as the
// path tells: its ID, the runtime where a systemd scope's name gives it,
// and the pod UID under a kubepods hierarchy. Nil for a cgroup in no
// container, and for a runtime's monitor (conmon), which runs beside its
// container, not in it. The innermost container wins: a container started
// inside another is that one.
func Identify(path string) *events.Container {
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		id, runtime, ok := containerPart(parts[i])
		if !ok {
			continue
		}
		c := &events.Container{ID: id, Runtime: runtime}
		if uid := podUID(parts[:i]); uid != "" {
			c.Pod = &events.Pod{UID: uid}
		}
		if c.Runtime == "" && i > 0 && parts[i-1] == "docker" {
			c.Runtime = "docker" // Docker's cgroupfs driver: /docker/ID
		}
		return c
	}
	return nil
}

// containerPart reads one path component: ID, PREFIX-ID.scope or
// PREFIX-ID. A monitor's scope (libpod-conmon-ID, crio-conmon-ID) is no
// container.
func containerPart(part string) (id, runtime string, ok bool) {
	name := strings.TrimSuffix(part, ".scope")
	if IsID(name) {
		return name, "", true
	}
	if len(name) <= idLen || name[len(name)-idLen-1] != '-' {
		return "", "", false
	}
	id, prefix := name[len(name)-idLen:], name[:len(name)-idLen]
	if !IsID(id) || strings.HasSuffix(prefix, "conmon-") {
		return "", "", false
	}
	for _, s := range scopePrefixes {
		if prefix == s.prefix {
			return id, s.runtime, true
		}
	}
	return id, "", true
}

// podUID finds a Kubernetes pod's UID in the components above a
// container's: kubepods/burstable/podUID (cgroupfs driver) or
// kubepods-burstable-podUID.slice (systemd driver, with '_' for '-').
func podUID(parts []string) string {
	for i := len(parts) - 1; i >= 0; i-- {
		p := strings.TrimSuffix(parts[i], ".slice")
		j := strings.LastIndex(p, "pod")
		if j < 0 || !strings.HasPrefix(p, "kubepods") && !underKubepods(parts[:i]) {
			continue
		}
		uid := strings.ReplaceAll(p[j+3:], "_", "-")
		if isUID(uid) {
			return uid
		}
	}
	return ""
}

func underKubepods(parts []string) bool {
	for _, p := range parts {
		if strings.HasPrefix(p, "kubepods") {
			return true
		}
	}
	return false
}

// isUID reports whether s is a UUID as Kubernetes makes pod UIDs
// (8-4-4-4-12 hexadecimal digits).
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// IsID reports whether s is a full container ID.
func IsID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for _, c := range s {
		if !isHex(c) {
			return false
		}
	}
	return true
}

func isHex(c rune) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' }
