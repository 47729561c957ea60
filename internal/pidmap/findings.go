package pidmap

import (
	"fmt"
	"slices"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/findings"
)

// The findings on processes (docs/findings.md): judged as the tree applies
// each event (internal/findings), so a live tree and a recording's replay
// raise the same. Two are not kept but read from the tree whenever asked:
// entered (EnteredBy) and outside-cgroup (OutsideInitCgroup).

// judgedTypes are the event types findings are judged on.
func judged(t events.Type) bool {
	switch t {
	case events.TypeExec, events.TypeRename, events.TypeSetns, events.TypeCred, events.TypeProc:
		return true
	}
	return false
}

// judge raises the findings ev shows on p, its subject, now that the tree
// has applied it; before is p's credentials before ev.
func (t *Tree) judge(ev *events.Event, p *Proc, before *events.Cred) {
	if ev.Type == events.TypeExec {
		p.findings = slices.DeleteFunc(p.findings, func(f events.Finding) bool { return f.Image })
	}
	if ev.Type == events.TypeProc {
		// A snapshot line read back carries what its recorder had found.
		for _, f := range ev.Findings {
			if f.Name != events.FindEntered && f.Name != events.FindOutsideCgroup {
				f.Image = f.Name == events.FindMasquerade || f.Name == events.FindFileless
				p.addFinding(t, f)
			}
		}
	}
	facts := findings.Facts{Before: before}
	if ev.Type == events.TypeSetns {
		// Only a setns asks whose namespaces it entered: no lookup, and
		// no closure, for the execs of every process.
		facts.HostNS, facts.NSContainer = t.hostNS(), t.nsContainer(p)
	}
	if p.Cgroup != nil {
		facts.Container = p.Cgroup.Container
	}
	findings.Judge(ev, &facts, func(f events.Finding) { p.addFinding(t, f) })
}

// addFinding keeps f unless p has a finding of that name already: the
// first one seen stands. Kept in name order.
func (p *Proc) addFinding(t *Tree, f events.Finding) {
	i := 0
	for ; i < len(p.findings); i++ {
		if p.findings[i].Name == f.Name {
			return
		}
		if p.findings[i].Name > f.Name {
			break
		}
	}
	p.findings = append(p.findings, events.Finding{})
	copy(p.findings[i+1:], p.findings[i:])
	p.findings[i] = f
	if t.OnFinding != nil {
		t.OnFinding(p, f)
	}
}

// hostNS is the host's namespaces, where the tree holds a process that
// has them for sure: kthreadd (host PID 2), whose kernel threads all hold
// the kernel's initial namespaces, else the host's init.
func (t *Tree) hostNS() (ns [events.NSKinds]uint32) {
	for _, pid := range []uint32{2, 1} {
		if p := t.procs[pid]; p != nil && len(p.nspid) == 1 && p.nsset != nil && (pid == 1 || p.PPID == 0) {
			return *p.nsset
		}
	}
	return ns
}

// nsContainer returns a function that names a container other than p's
// (and its pod's) whose processes hold a namespace. It walks the tree:
// it is asked only for setns calls made from inside containers.
func (t *Tree) nsContainer(p *Proc) func(kind int, ino uint32) *events.Container {
	return func(kind int, ino uint32) *events.Container {
		var own *events.Container
		if p.Cgroup != nil {
			own = p.Cgroup.Container
		}
		for _, q := range t.procs {
			if q == p || q.nsset == nil || q.nsset[kind] != ino || q.Cgroup == nil || q.Cgroup.Container == nil {
				continue
			}
			c := q.Cgroup.Container
			if own != nil && (c.ID == own.ID || c.Pod != nil && own.Pod != nil && c.Pod.UID != "" && c.Pod.UID == own.Pod.UID) {
				continue
			}
			return c
		}
		return nil
	}
}

// Findings appends p's findings to dst[:0], in name order: those judged
// from events, and entered and outside-cgroup as the tree knows them now.
func (p *Proc) Findings(dst []events.Finding) []events.Finding {
	dst = dst[:0]
	stored := p.findings
	for name := range events.FindingCount {
		switch {
		case len(stored) > 0 && stored[0].Name == name:
			dst = append(dst, stored[0])
			stored = stored[1:]
		case name == events.FindEntered && p.EnteredBy.PID != 0:
			dst = append(dst, events.Finding{Name: name, Time: p.StartTime, Reason: p.enteredReason()})
		case name == events.FindOutsideCgroup && p.OutsideInitCgroup():
			dst = append(dst, events.Finding{Name: name, Time: p.StartTime,
				Reason: fmt.Sprintf("in pid:[%d] but not in its init's cgroup (%s)", p.ns.Inode, p.ns.Init.Cgroup.Path)})
		}
	}
	return dst
}

// Flagged reports whether p has any finding.
func (p *Proc) Flagged() bool {
	return len(p.findings) > 0 || p.EnteredBy.PID != 0 || p.OutsideInitCgroup()
}

// enteredReason names the enterer by host PID: its key (entered_by) is on
// the line, and /proc, which answers <pid>, knows no start to key it with.
func (p *Proc) enteredReason() string {
	if p.Entered() {
		return fmt.Sprintf("forked into pid:[%d] from outside it by host PID %d (setns: nsenter, docker exec)", p.ns.Inode, p.EnteredBy.PID)
	}
	return fmt.Sprintf("descends from a process that host PID %d forked into pid:[%d] from outside it", p.EnteredBy.PID, p.ns.Inode)
}

// noteDerived tells OnFinding of p's entered and outside-cgroup findings
// the first time the tree knows them.
func (t *Tree) noteDerived(p *Proc) {
	if p.EnteredBy.PID != 0 && !p.counted.Has(events.FindEntered) {
		p.counted = p.counted.With(events.FindEntered)
		t.OnFinding(p, events.Finding{Name: events.FindEntered, Time: p.StartTime})
	}
	if !p.counted.Has(events.FindOutsideCgroup) && p.OutsideInitCgroup() {
		p.counted = p.counted.With(events.FindOutsideCgroup)
		t.OnFinding(p, events.Finding{Name: events.FindOutsideCgroup, Time: p.StartTime})
	}
}
