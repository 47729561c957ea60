package main

// --netns and the network namespace column: names users know for the
// inodes the kernel reports.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/netnames"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

// resolveNetNS reads --netns REF against tree (a live snapshot, or a
// recording's tree when fromFile): net:[INODE] or an inode, a path to a
// namespace file, an ip netns or runtime name, or a container. A
// namespace nothing holds (no live process, no file) is an error: it
// would select nothing, forever.
func resolveNetNS(ref string, tree *pidmap.Tree, fromFile bool) (uint32, error) {
	if ref == "" {
		return 0, nil
	}
	var names netnames.Names
	if !fromFile {
		names = netnames.Scan("/")
	}
	ino, isRef, err := netnames.ParseRef(ref)
	switch {
	case err != nil:
		return 0, usageError{Msg: "--netns: " + err.Error()}
	case isRef:
		if netnsHeld(tree, ino) || len(names[ino]) > 0 {
			return ino, nil
		}
		return 0, notFoundError{Err: fmt.Errorf("--netns %s: no process is in network namespace net:[%d], and no file names it", ref, ino)}
	case netnames.IsPath(ref):
		if fromFile {
			return 0, usagef("--netns %s: with --from, give net:[INODE] or a container of the recording: files name live namespaces", ref)
		}
		ino, err := netnames.Inode(ref)
		if err != nil {
			return 0, notFoundError{Err: fmt.Errorf("--netns: %v", err)}
		}
		return ino, nil
	}
	if ino, ok := names.Lookup(ref); ok {
		return ino, nil
	}
	c, err := container.Select(tree.Containers(), ref)
	if errors.Is(err, container.ErrAmbiguous) {
		return 0, usageError{Msg: "--netns: " + err.Error()}
	}
	if err == nil {
		if ino := containerNetNS(tree, c.ID); ino != 0 {
			return ino, nil
		}
	}
	return 0, notFoundError{Err: fmt.Errorf("--netns %s: no network namespace of that name: not an ip netns name (ip netns list), a runtime's netns file (/run/docker/netns), a container, a path or net:[INODE]", ref)}
}

// netnsHeld reports whether a process of tree is in network namespace ino.
func netnsHeld(tree *pidmap.Tree, ino uint32) bool {
	held := false
	tree.Walk(func(p *pidmap.Proc, _ int) {
		held = held || p.Namespaces()[events.NSNet] == ino
	})
	return held
}

// containerNetNS returns the network namespace of container id: its init's
// (the first of its processes down the tree), 0 when it has none.
func containerNetNS(tree *pidmap.Tree, id string) uint32 {
	var ino uint32
	tree.Walk(func(p *pidmap.Proc, _ int) {
		if ino == 0 && p.Cgroup.In(id) {
			ino = p.Namespaces()[events.NSNet]
		}
	})
	return ino
}

// netnsNamer names network namespaces for the netns column and line:
// "blue (ip netns)", "container web", "host", else "net:[INODE]".
type netnsNamer struct {
	files      netnames.Names
	containers map[uint32]string // netns -> the container whose processes are in it first
	host       uint32            // the network namespace of the host's init, where readable
}

func newNetnsNamer(q *query) *netnsNamer {
	n := &netnsNamer{containers: map[uint32]string{}}
	if !q.FromFile {
		n.files = netnames.Scan("/")
		n.host, _ = netnames.Inode(procfs.ProcRoot + "/1/ns/net")
	}
	q.Tree.Walk(func(p *pidmap.Proc, _ int) {
		ino := p.Namespaces()[events.NSNet]
		if _, ok := n.containers[ino]; ok || p.Cgroup == nil || p.Cgroup.Container == nil {
			return
		}
		if parent := p.Parent(); parent == nil || parent.Namespaces()[events.NSNet] != ino {
			n.containers[ino] = p.Cgroup.Container.Label()
		}
	})
	return n
}

// label names ino for a terminal.
func (n *netnsNamer) label(ino uint32) string {
	var parts []string
	if l := n.files.Label(ino); l != "" {
		parts = append(parts, l)
	}
	if c := n.containers[ino]; c != "" {
		parts = append(parts, "container "+c)
	}
	if ino != 0 && ino == n.host {
		parts = append(parts, "host")
	}
	if ino == 0 {
		return "-"
	}
	if len(parts) == 0 {
		return fmt.Sprintf("net:[%d]", ino)
	}
	return termsafe.String(strings.Join(parts, ", "))
}
