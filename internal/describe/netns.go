package describe

// --netns and the network namespace column: names users know for the
// inodes the kernel reports.

import (
	"fmt"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/netnames"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// netnsNamer names network namespaces for the netns column and line:
// "blue (ip netns)", "container web", "host", else "net:[INODE]".
type netnsNamer struct {
	files      netnames.Names
	containers map[uint32]string // netns -> the container whose processes are in it first
	host       uint32            // the network namespace of the host's init, where readable
}

func newNetnsNamer(v *view.View) *netnsNamer {
	n := &netnsNamer{containers: map[uint32]string{}}
	if !v.FromFile {
		n.files = netnames.Scan("/")
		n.host, _ = netnames.Inode(procfs.ProcRoot + "/1/ns/net")
	}
	v.Tree.Walk(func(p *pidmap.Proc, _ int) {
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
