package view

import (
	"errors"
	"fmt"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/netnames"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// --netns: a network namespace by any name users know for it.

// ResolveNetNS reads --netns REF against tree (a live snapshot, or a
// recording's tree when fromFile): net:[INODE] or an inode, a path to a
// namespace file, an ip netns or runtime name, or a container. A
// namespace nothing holds (no live process, no file) is an error: it
// would select nothing, forever.
func ResolveNetNS(ref string, tree *pidmap.Tree, fromFile bool) (uint32, error) {
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
		return 0, fault.Usage{Msg: "--netns: " + err.Error()}
	case isRef:
		if netnsHeld(tree, ino) || len(names[ino]) > 0 {
			return ino, nil
		}
		return 0, fault.NotFound{Err: fmt.Errorf("--netns %s: no process is in network namespace net:[%d], and no file names it", ref, ino)}
	case netnames.IsPath(ref):
		if fromFile {
			return 0, fault.Usagef("--netns %s: with --from, give net:[INODE] or a container of the recording: files name live namespaces", ref)
		}
		ino, err := netnames.Inode(ref)
		if err != nil {
			return 0, fault.NotFound{Err: fmt.Errorf("--netns: %v", err)}
		}
		return ino, nil
	}
	if ino, ok := names.Lookup(ref); ok {
		return ino, nil
	}
	c, err := container.Select(tree.Containers(), ref)
	if errors.Is(err, container.ErrAmbiguous) {
		return 0, fault.Usage{Msg: "--netns: " + err.Error()}
	}
	if err == nil {
		if ino := containerNetNS(tree, c.ID); ino != 0 {
			return ino, nil
		}
	}
	return 0, fault.NotFound{Err: fmt.Errorf("--netns %s: no network namespace of that name: not an ip netns name (ip netns list), a runtime's netns file (/run/docker/netns), a container, a path or net:[INODE]", ref)}
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
