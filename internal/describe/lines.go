package describe

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
	"github.com/nspidtrace/nspidtrace/internal/view"
)

// WriteLines writes <pid>'s line for each of cols that its other lines do
// not already show (the user, the arguments): the capability sets in full,
// seccomp, the LSM label, the network namespace, the state.
func WriteLines(w io.Writer, c *Context, p *pidmap.Proc, cols []Column) {
	for _, col := range cols {
		var value string
		switch col.Name {
		case "user", "huser", "args", "flags":
			continue // lines of their own
		case "caps":
			value = "-"
			if cred := p.Cred(); cred != nil {
				value = CapsSummary(cred, c.Full)
			}
		case "netns":
			ino := p.Namespaces()[events.NSNet]
			value = c.netns(p)
			if ino != 0 && !strings.HasPrefix(value, "net:[") {
				value += fmt.Sprintf(", net:[%d]", ino)
			}
		default:
			value = col.Value(c, p)
		}
		fmt.Fprintf(w, "%-6s %s\n", col.Name, value)
	}
}

// ContainerLine names p's container: "container web (f9d9678ac59e,
// docker), pod shop/web-0, cgroup /docker/f9d9…"; "" when p is in none.
func ContainerLine(p *pidmap.Proc) string {
	cg := p.Cgroup
	if cg != nil && cg.Unresolved != "" && cg.Container == nil {
		return "container unknown: " + termsafe.String(cg.Unresolved)
	}
	if cg == nil || cg.Container == nil {
		return ""
	}
	c := cg.Container
	var b strings.Builder
	fmt.Fprintf(&b, "container %s (%s", termsafe.String(c.Label()), c.ShortID())
	if c.Runtime != "" {
		fmt.Fprintf(&b, ", %s", termsafe.String(c.Runtime))
	}
	b.WriteByte(')')
	if pod := c.Pod; pod != nil {
		switch {
		case pod.Name != "":
			fmt.Fprintf(&b, ", pod %s/%s", termsafe.String(pod.Namespace), termsafe.String(pod.Name))
		case pod.UID != "":
			fmt.Fprintf(&b, ", pod UID %s", termsafe.String(pod.UID))
		}
	}
	fmt.Fprintf(&b, ", cgroup %s", termsafe.String(cg.Path))
	return b.String()
}

// Args is p's argv: the process chose it, so it is never printed raw.
func Args(p *pidmap.Proc) string {
	argv := p.Argv()
	for i := range argv {
		argv[i] = termsafe.String(argv[i])
	}
	if p.ArgsTruncated {
		// As ps cuts: what follows was longer than the bound kept.
		argv = append(argv, "…[truncated]")
	}
	return strings.Join(argv, " ")
}

// WriteFindings writes <pid>'s line for each of p's findings: its name and
// why. When it was first seen is JSON's (`findings`): a one-shot answer
// sees a snapshot, where first is now.
func WriteFindings(w io.Writer, p *pidmap.Proc) {
	for _, f := range p.Findings(nil) {
		if !f.Name.OfTree() { // their lines above say them
			fmt.Fprintf(w, "finding %s: %s\n", f.Name, termsafe.String(f.Reason))
		}
	}
}

// WriteAncestors writes p's ancestors, parent first, as --ancestors shows
// them; where none is in view, why.
func WriteAncestors(w io.Writer, v *view.View, p *pidmap.Proc) {
	fmt.Fprintln(w, "\nANCESTORS (parent first)")
	switch {
	// Not a table with no rows: say why there are none.
	case p.Parent() == nil && p.PPID == 0:
		fmt.Fprintln(w, "none: it has no parent (the host's init, or a kernel thread)")
		return
	case p.Parent() == nil:
		fmt.Fprintf(w, "none visible from here: the parent, host PID %d, is outside the pid namespace the caller can see\n", p.PPID)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tPIDS\tCOMM\tARGS")
	for a := p.Parent(); a != nil; a = a.Parent() {
		pids := "-" // outside the namespace looked from
		if a.Levels() > v.Level() {
			pids = a.PIDsFrom(v.Level())
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", a.PID, pids, termsafe.String(a.CommString()), Args(a))
	}
	tw.Flush()
}
