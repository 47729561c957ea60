package events

import (
	"fmt"
)

// FindingName names one kind of finding: something about a process that
// responders look for, computed from what the events and the tree carry
// (internal/findings; docs/findings.md).
type FindingName uint8

// The findings, in the order lines list them.
const (
	FindMasquerade FindingName = iota
	FindFileless
	FindPrivilegeGain
	FindEntered
	FindOutsideCgroup
	FindNewUsernsRoot
	FindNSEscape
	// FindingCount is how many findings there are.
	FindingCount
)

// FindingNames are the names lines and --help use, by FindingName.
var FindingNames = [FindingCount]string{
	"masquerade", "fileless", "privilege-gain", "entered", "outside-cgroup", "new-userns-root", "ns-escape-attempt",
}

func (n FindingName) String() string {
	if n < FindingCount {
		return FindingNames[n]
	}
	return "finding"
}

// OfTree reports whether a finding is one the tree knows by itself, with
// a field of its own on lines and a note in text (entered_by,
// outside_init_cgroup), rather than one judged from events.
func (n FindingName) OfTree() bool { return n == FindEntered || n == FindOutsideCgroup }

// ParseFindingName reads a finding's name.
func ParseFindingName(s string) (FindingName, bool) {
	for i, name := range FindingNames {
		if name == s {
			return FindingName(i), true
		}
	}
	return 0, false
}

// FindingSet is a set of finding names.
type FindingSet uint8

// Has reports whether n is in the set.
func (s FindingSet) Has(n FindingName) bool { return s&(1<<n) != 0 }

// With returns the set with n added.
func (s FindingSet) With(n FindingName) FindingSet { return s | 1<<n }

// Finding is one finding on a process: its name, when it was first seen
// (Unix ns) and why, with the evidence.
type Finding struct {
	Name   FindingName
	Time   int64
	Reason string
	// Image: the finding is about the program the process runs, and ends
	// when it executes another. Not written: a line tells what holds now.
	Image bool
}

// MaxReason bounds a finding's reason: it quotes what processes chose.
const MaxReason = 256

// appendFindings appends the `findings` array: each finding with when it
// was first seen and why.
func appendFindings(buf []byte, fs []Finding) []byte {
	buf = append(buf, `,"findings":[`...)
	for i, f := range fs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"name":"`...)
		buf = append(buf, f.Name.String()...)
		buf = append(buf, `","time":"`...)
		buf = AppendTime(buf, f.Time)
		buf = append(buf, `","reason":`...)
		buf = appendString(buf, []byte(f.Reason))
		buf = append(buf, '}')
	}
	return append(buf, ']')
}

// findings reads a line's `findings` array: at most one entry per known
// name (a recording's later duplicates and unknown names are skipped), a
// reason cut at MaxReason bytes.
func (ps *Parser) findings(ev *Event) error {
	p := &ps.p
	var seen FindingSet
	return p.array(func(int) error {
		var f Finding
		var known bool
		err := p.object(func(k []byte) error {
			switch string(k) {
			case "name":
				s, err := p.string()
				if err == nil {
					f.Name, known = ParseFindingName(string(s))
				}
				return err
			case "time":
				s, err := p.string()
				if err != nil {
					return err
				}
				var ok bool
				if f.Time, ok = parseTime(s); !ok {
					return fmt.Errorf("bad finding time %q", s)
				}
			case "reason":
				s, err := p.string()
				if err == nil {
					f.Reason = string(truncUTF8(p.text(s), MaxReason))
				}
				return err
			default:
				return p.skip()
			}
			return nil
		})
		if err == nil && known && !seen.Has(f.Name) {
			seen = seen.With(f.Name)
			ev.Findings = append(ev.Findings, f)
		}
		return err
	})
}
