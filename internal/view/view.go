// Package view answers what a command asks of a process tree, live or
// recorded: which processes it shows (--pidns, --container, --netns), the
// pid namespace whose PIDs it reads and shows, finding one process, and
// the notes a row carries (its container, how it entered its namespace).
// Errors the user can act on are fault.Usage and fault.NotFound.
package view

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

// View is a process tree and the view a command answers in.
type View struct {
	Tree *pidmap.Tree
	AsOf int64 // the instant the tree stands at (Unix ns)

	// NS is the pid namespace PIDs are read in: REF's, the container's,
	// the caller's own (live) or the recording's host level.
	NS *pidmap.PidNS
	// Narrowed: --pidns or --container chose the view, so only processes
	// inside it are shown, from its level down.
	Narrowed bool
	// Container is --container's; its processes are those in its cgroup
	// (events.Cgroup.In).
	Container *events.Container
	// Pod is --pod's (nil without it): its processes are those of its
	// containers, and with a pid namespace its containers share, every
	// process in that namespace (podNS).
	Pod   *container.PodRef
	podNS bool
	// NetNS, when not 0, keeps only processes in that network namespace
	// (--netns).
	NetNS uint32

	// Own is the caller's pid namespace (live): /proc numbers processes
	// as it sees them.
	Own *pidmap.PidNS

	FromFile bool // the tree is a recording's
	Fallback bool // answered from /proc, without privileges

	// Flagged keeps only processes with findings and their ancestors
	// (--flagged); flagged holds them, found at the first Selected.
	Flagged bool
	flagged map[*pidmap.Proc]bool
	scratch []events.Finding
}

// Select chooses the view of the tree: container's (a name, ID or ID
// prefix), pod's (NAMESPACE/NAME), pid namespace ref's, or by default the
// caller's own (live) or the recording's host level.
func (v *View) Select(container, pod string, ref uint32) error {
	switch {
	case container != "":
		return v.SelectContainer(container)
	case pod != "":
		return v.SelectPod(pod)
	case ref != 0:
		v.Narrowed = true
		v.NS = v.Tree.Namespace(ref)
		if v.NS == nil {
			return fault.NotFound{Err: fmt.Errorf("no live process is in pid namespace pid:[%d]", ref)}
		}
	case v.FromFile:
		if v.NS = v.Tree.Root(); v.NS == nil {
			return fault.NotFound{Err: errors.New("the recording holds no process at that instant")}
		}
	default:
		if v.NS = v.Own; v.NS == nil {
			return errors.New("the caller's pid namespace has no process in the tree")
		}
	}
	return nil
}

// RefInRecording resolves a PID-form --pidns against a recording: the pid
// namespace of that (host) PID at the instant looked at.
func (v *View) RefInRecording(ref string) (uint32, error) {
	pid, _ := strconv.ParseUint(ref, 10, 32)
	if p := v.Tree.Get(uint32(pid)); p != nil {
		return p.NS().Inode, nil
	}
	if h := v.Tree.LastHolder(uint32(pid)); h != nil {
		return h.NS().Inode, nil
	}
	return 0, fault.NotFound{Err: fmt.Errorf("--pidns %s: no such process in the recording at that instant", ref)}
}

// SelectContainer narrows the view to a container: its processes, seen
// from its pid namespace.
func (v *View) SelectContainer(arg string) error {
	c, err := container.Select(v.Tree.Containers(), arg)
	switch {
	case errors.Is(err, container.ErrAmbiguous):
		return fault.Usage{Msg: "--container: " + err.Error()}
	case errors.Is(err, container.ErrNoContainer):
		if v.FromFile {
			err = fmt.Errorf("%w at that instant of the recording", err)
		} else if c, finished := (container.State{Root: "/"}).Stopped(arg); c != nil {
			// Not the same answer as a name nothing has.
			err = fmt.Errorf("%w %q: %s (%s, %s) is stopped%s", container.ErrNoContainer, arg,
				termsafe.String(c.Qualified()), c.ShortID(), c.Runtime, stoppedAt(finished))
		}
		return fault.NotFound{Err: err}
	}
	v.Container, v.Narrowed = c, true
	v.NS = v.Tree.ContainerNS(c.ID)
	return nil
}

// SelectPod narrows the view to a Kubernetes pod: its containers'
// processes, seen from the pid namespace they share, if they do (the pod
// shares its process namespace: its sandbox's pause is the init), else
// from the host's (live: the caller's).
func (v *View) SelectPod(arg string) error {
	ref, err := container.ParsePod(arg)
	if err != nil {
		return err
	}
	cs, err := container.SelectPod(v.Tree.Containers(), ref)
	switch {
	case errors.Is(err, container.ErrAmbiguous):
		return fault.Usage{Msg: "--pod: " + err.Error()}
	case err != nil && v.FromFile:
		return fault.NotFound{Err: fmt.Errorf("%w at that instant of the recording", err)}
	case err != nil:
		return fault.NotFound{Err: err}
	}
	for _, c := range cs {
		if ns := v.Tree.ContainerNS(c.ID); PodMadeBy(ns, ref) {
			v.NS, v.podNS = ns, true
		}
	}
	if !v.podNS {
		if err := v.Select("", "", 0); err != nil { // the default view
			return err
		}
	}
	v.Pod, v.Narrowed = &ref, true
	return nil
}

// stoppedAt says when a container stopped, where its runtime says.
func stoppedAt(t time.Time) string {
	if t.IsZero() || t.Year() < 2000 {
		return ""
	}
	return " since " + t.UTC().Format(time.RFC3339)
}

// Selected reports whether p is shown: with --pidns, a process inside REF;
// with --container, one of the container's, or one that shares the pid
// namespace the container made (marked by outsideContainer).
func (v *View) Selected(p *pidmap.Proc) bool {
	if v.NetNS != 0 && p.Namespaces()[events.NSNet] != v.NetNS {
		return false
	}
	if v.Flagged && !v.flaggedOrAbove(p) {
		return false
	}
	if !v.Narrowed {
		return true
	}
	if v.Pod != nil {
		return p.Cgroup != nil && v.Pod.Has(p.Cgroup.Container) || v.podNS && p.LevelOf(v.NS) >= 0
	}
	if v.Container == nil {
		return p.LevelOf(v.NS) >= 0
	}
	return p.Cgroup.In(v.Container.ID) || v.OwnsView() && p.LevelOf(v.NS) >= 0
}

// Roots are the processes tree draws at the top: pid alone when not 0,
// else each selected process whose parent is not selected, by host PID: a
// shell from docker exec shows up beside the container's init.
func (v *View) Roots(pid uint32) ([]*pidmap.Proc, error) {
	if pid != 0 {
		root, err := v.Find(pid)
		if err != nil {
			return nil, err
		}
		return []*pidmap.Proc{root}, nil
	}
	// Every process may be one: sized so that the list never grows.
	roots := make([]*pidmap.Proc, 0, v.Tree.Len())
	v.Tree.Walk(func(p *pidmap.Proc, _ int) {
		if v.Selected(p) && (p.LiveParent() == nil || !v.Selected(p.LiveParent())) {
			roots = append(roots, p)
		}
	})
	return roots, nil
}

// flaggedOrAbove reports whether p has findings or is an ancestor of a
// process that has: --flagged shows the way down to each.
func (v *View) flaggedOrAbove(p *pidmap.Proc) bool {
	if v.flagged == nil {
		v.flagged = map[*pidmap.Proc]bool{}
		v.Tree.Walk(func(q *pidmap.Proc, _ int) {
			if !q.Flagged() {
				return
			}
			for a := q; a != nil && !v.flagged[a]; a = a.LiveParent() {
				v.flagged[a] = true
			}
		})
	}
	return v.flagged[p]
}

// OwnsView reports whether the container made the pid namespace it is seen
// from: its init is the container's (not so for --pid=host, or a sidecar
// with --pid=container:OTHER).
func (v *View) OwnsView() bool { return MadeBy(v.NS, v.Container.ID) }

// MadeBy reports whether container id made pid namespace ns: its init,
// while it lives, is the container's. A dead namespace's inode is reused
// by the kernel: this tells generations apart.
func MadeBy(ns *pidmap.PidNS, id string) bool {
	return ns != nil && ns.Level > 0 && ns.Init != nil && ns.Init.Cgroup.In(id)
}

// PodMadeBy reports whether a container of pod ref made pid namespace ns
// (its sandbox, in a pod that shares one): its init, while it lives, is
// the pod's.
func PodMadeBy(ns *pidmap.PidNS, ref container.PodRef) bool {
	return ns != nil && ns.Level > 0 && ns.Init != nil && ns.Init.Cgroup != nil && ref.Has(ns.Init.Cgroup.Container)
}

// OutsideContainer describes, for a process shown with --container that is
// not in the container's cgroup, where it is instead; "" for members and
// without --container.
func (v *View) OutsideContainer(p *pidmap.Proc) string {
	if v.Pod != nil {
		if p.Cgroup != nil && v.Pod.Has(p.Cgroup.Container) {
			return ""
		}
		return "in pod " + termsafe.String(v.Pod.String()) + "'s pid namespace, " + cgroupOf(p)
	}
	if v.Container == nil || p.Cgroup.In(v.Container.ID) {
		return ""
	}
	return fmt.Sprintf("in %s's pid namespace, %s", termsafe.String(v.Container.Label()), cgroupOf(p))
}

// cgroupOf says where a process shown beside a container or pod it is not
// in is instead.
func cgroupOf(p *pidmap.Proc) string {
	switch {
	case p.Cgroup != nil && p.Cgroup.Container != nil:
		return "container " + termsafe.String(p.Cgroup.Container.Label())
	case p.Cgroup != nil && p.Cgroup.Path != "":
		return "cgroup " + termsafe.String(p.Cgroup.Path)
	}
	return "not in its cgroup"
}

// Level is the pid-namespace level PIDs are shown from.
func (v *View) Level() int {
	if v.Narrowed {
		return v.NS.Level
	}
	return 0
}

// Find returns the process that is pid in the view. A thread ID names its
// process. Not found, the error names the last holder when the tree
// remembers one.
func (v *View) Find(pid uint32) (*pidmap.Proc, error) {
	p, err := v.findInView(pid)
	if err == nil && v.NetNS != 0 {
		if ino := p.Namespaces()[events.NSNet]; ino != v.NetNS {
			return nil, fault.NotFound{Err: fmt.Errorf("process %d is in network namespace net:[%d], not in --netns's net:[%d]", pid, ino, v.NetNS)}
		}
	}
	return p, err
}

// findInView is Find without --netns.
func (v *View) findInView(pid uint32) (*pidmap.Proc, error) {
	if p := v.NS.Lookup(pid); p != nil {
		return p, nil
	}
	if !v.FromFile {
		if p := v.findLive(pid); p != nil {
			return p, nil
		}
	}
	if h := v.Tree.LastHolderIn(v.NS, pid); h != nil {
		return nil, fault.NotFound{Err: fmt.Errorf("no process %d in pid:[%d]: it was %s (host PID %d), which exited at %s",
			pid, v.NS.Inode, termsafe.String(h.CommString()), h.PID, pidmap.FormatTime(h.ExitTime))}
	}
	return nil, fault.NotFound{Err: fmt.Errorf("no process %d in pid:[%d]", pid, v.NS.Inode)}
}

// findLive asks /proc for what the tree does not hold: a thread ID, or
// (without privileges) another user's process, whose namespaces the
// fallback tree could not read.
func (v *View) findLive(pid uint32) *pidmap.Proc {
	viewPID, err := procfs.FindInNS(procfs.ProcRoot, v.NS.Inode, pid)
	if err != nil {
		return nil
	}
	if v.Own != nil {
		if p := v.Own.Lookup(uint32(viewPID)); p != nil {
			return p
		}
	}
	if !v.Fallback || v.Narrowed {
		return nil
	}
	var ev events.Event
	if procfs.ReadProc(procfs.ProcRoot, viewPID, &ev) != nil {
		return nil
	}
	v.Tree.Apply(&ev)
	return v.Tree.Get(ev.PID)
}

// AppendNotes appends what tree says of p after its label: zombie, its
// container where p is the first of it down its branch, where a process
// shown with --container is instead, how p entered its pid namespace, and
// its findings' names after a "!" (docs/findings.md).
// Most processes have none: that costs no allocation.
func (v *View) AppendNotes(dst []byte, p *pidmap.Proc) []byte {
	if p.Zombie {
		dst = append(dst, " <zombie>"...)
	}
	if c := NewContainer(p); c != nil && v.Container == nil {
		dst = termsafe.Append(append(dst, " [container "...), c.Label())
		dst = append(dst, ']')
	}
	if out := v.OutsideContainer(p); out != "" {
		dst = append(append(append(dst, " ["...), out...), ']')
	}
	if from := v.EnteredFrom(p); from != "" {
		dst = append(append(append(dst, " [entered from "...), from...), ']')
	}
	if cg := p.Cgroup; cg != nil && cg.Unresolved != "" && cg.Container == nil {
		dst = append(dst, " [container unknown]"...)
	}
	if p.ParentLoop {
		// Only a recording can say this: the kernel makes no loops.
		dst = strconv.AppendUint(append(dst, " [parent "...), uint64(p.PPID), 10)
		dst = append(dst, " not linked: the recording's parents loop back here]"...)
	}
	// Findings after a "!", but for those the notes above say already
	// (entered, outside its init's cgroup), or the tree shows (a process
	// an entered one started).
	if p.Flagged() {
		v.scratch = p.Findings(v.scratch)
		n := 0
		for _, f := range v.scratch {
			if f.Name.OfTree() {
				continue
			}
			if n == 0 {
				dst = append(dst, " [!"...)
			} else {
				dst = append(dst, ',')
			}
			dst = append(append(dst, ' '), f.Name.String()...)
			n++
		}
		if n > 0 {
			dst = append(dst, ']')
		}
	}
	return dst
}

// EnteredFrom describes the process that forked p into its pid namespace
// from outside, for a process that entered it: "nsenter(12600)", or the
// host PID alone once the enterer is gone; it adds when p is not in its
// namespace's init's cgroup, as nsenter leaves it (docker exec joins it).
// "" for any other process.
func (v *View) EnteredFrom(p *pidmap.Proc) string {
	if !p.Entered() {
		return ""
	}
	by := p.EnteredBy
	from := fmt.Sprintf("host PID %d", by.PID)
	for _, e := range []*pidmap.Proc{v.Tree.Get(by.PID), v.Tree.LastHolder(by.PID)} {
		if e != nil && (e.Start == by.Start || by.Start == 0) {
			from = fmt.Sprintf("%s(%d)", termsafe.String(e.CommString()), by.PID)
			break
		}
	}
	if p.OutsideInitCgroup() {
		from += "; not in its init's cgroup"
	}
	return from
}

// NewContainer returns p's container where p is the first of it down its
// branch (its parent is in another, or none): a container's init, or a
// process that entered it.
func NewContainer(p *pidmap.Proc) *events.Container {
	if p.Cgroup == nil || p.Cgroup.Container == nil {
		return nil
	}
	c := p.Cgroup.Container
	if parent := p.Parent(); parent != nil && parent.Cgroup.In(c.ID) {
		return nil
	}
	return c
}
