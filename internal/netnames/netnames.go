// Package netnames names network namespaces the way users know them: the
// names of `ip netns` (/run/netns), the files container runtimes keep for
// their sandboxes (Docker's /run/docker/netns, CNI's and Podman's
// /run/netns/cni-…, rootless Podman's /run/user/UID/netns), and, from a
// process tree, the container that owns one. Namespaces are opened with
// github.com/vishvananda/netns and told apart by their inode, as the
// kernel's events report them.
package netnames

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Name is one name of a network namespace.
type Name struct {
	Name   string // the file's name: `ip netns exec NAME`
	Source string // "ip netns", "docker", "rootless podman"
	Path   string // the file, under the root scanned
}

// dirs are where network namespace files are kept, and who keeps them.
// /var/run is /run on current systems; both are looked at, and a file
// found twice counts once.
var dirs = []struct{ glob, source string }{
	{"run/netns/*", "ip netns"},
	{"var/run/netns/*", "ip netns"},
	{"run/docker/netns/*", "docker"},
	{"var/run/docker/netns/*", "docker"},
	{"run/user/*/netns/*", "rootless podman"},
}

// maxFiles bounds the files a scan opens: a directory of a million
// entries costs no more than this.
const maxFiles = 4096

// Names maps a network namespace's inode to its names.
type Names map[uint32][]Name

// Scan finds the network namespace files under root ("/" for the host's).
// Files that are not namespaces (a stale mount point left by a crashed
// `ip netns`) are skipped.
func Scan(root string) Names {
	names := Names{}
	seen := map[string]bool{}
	n := 0
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(root, d.glob))
		for _, path := range matches {
			if n >= maxFiles {
				return names
			}
			real, err := filepath.EvalSymlinks(path)
			if err != nil || seen[real] {
				continue
			}
			seen[real] = true
			n++
			ino, err := Inode(path)
			if err != nil {
				continue
			}
			names[ino] = append(names[ino], Name{Name: filepath.Base(path), Source: d.source, Path: path})
		}
	}
	return names
}

// ErrNotNetNS means a file is not a network namespace.
var ErrNotNetNS = errors.New("not a network namespace")

// Inode opens the network namespace file at path (a /proc/PID/ns/net link,
// a bind mount of one) and returns the namespace's inode.
func Inode(path string) (uint32, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h), &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	// A namespace file lives on nsfs; anything else bound there is not one.
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(h), &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return 0, fmt.Errorf("%s: %w", path, ErrNotNetNS)
	}
	if t, err := unix.IoctlRetInt(int(h), nsGetNSType); err == nil && t != unix.CLONE_NEWNET {
		return 0, fmt.Errorf("%s: %w", path, ErrNotNetNS)
	}
	return uint32(st.Ino), nil
}

// nsGetNSType is NS_GET_NSTYPE (linux/nsfs.h, 4.11).
const nsGetNSType = 0xb703

// Lookup returns the inode of the namespace named name: an `ip netns`
// name, or a runtime's namespace file name.
func (n Names) Lookup(name string) (uint32, bool) {
	var found []uint32
	for ino, ns := range n {
		for _, x := range ns {
			if x.Name == name && !slices.Contains(found, ino) {
				found = append(found, ino)
			}
		}
	}
	if len(found) != 1 {
		return 0, false
	}
	return found[0], true
}

// Label is the namespace's first name with where it comes from, such as
// "blue (ip netns)"; "" when it has none.
func (n Names) Label(ino uint32) string {
	ns := n[ino]
	if len(ns) == 0 {
		return ""
	}
	return ns[0].Name + " (" + ns[0].Source + ")"
}

// ParseRef reads a namespace reference that names an inode directly:
// "net:[4026532160]" or "4026532160". ok is false for anything else.
func ParseRef(ref string) (ino uint32, ok bool, err error) {
	s := ref
	if inner, cut := strings.CutPrefix(s, "net:["); cut {
		inner, cut = strings.CutSuffix(inner, "]")
		if !cut {
			return 0, true, fmt.Errorf("bad network namespace %q (want net:[INODE])", ref)
		}
		s = inner
	} else if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v == 0 {
		return 0, true, fmt.Errorf("bad network namespace %q (want net:[INODE] with a 32-bit inode)", ref)
	}
	return uint32(v), true, nil
}

// IsPath reports whether ref names a file rather than a name.
func IsPath(ref string) bool { return strings.ContainsRune(ref, '/') }
