package story

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/termsafe"
)

// Flagged keeps the stories of processes with findings.
func Flagged(all []*Story) []*Story {
	var kept []*Story
	for _, s := range all {
		for _, f := range s.Facts {
			if f.Kind == "finding" {
				kept = append(kept, s)
				break
			}
		}
	}
	return kept
}

// instant is how a story writes instants: UTC, milliseconds.
func instant(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z")
}

// WriteText writes the stories for people: a container's generations and
// entries as tables, then each story, one fact per line, indented by depth.
// What processes chose is escaped for terminals.
func (told *Told) WriteText(w io.Writer) {
	stories := told.Stories
	if told.Live {
		fmt.Fprintln(w, "(live: what a snapshot shows now; record, then story --from, to tell lives)")
	}
	if c := told.Containers; c != nil {
		title := fmt.Sprintf("CONTAINER %s: %d generations", c.Generations[0].Container.Label(), len(c.Generations))
		columns := "GEN\tID\tINIT\tKEY\tSTARTED\tENDED\tHOW"
		name := func(*Generation) string { return "" }
		if c.Pod != nil { // a pod's generations are its containers': each row says whose
			title = fmt.Sprintf("POD %s: %d generations of its containers", c.Pod, len(c.Generations))
			columns = "GEN\tCONTAINER\tID\tINIT\tKEY\tSTARTED\tENDED\tHOW"
			name = func(g *Generation) string { return termsafe.String(g.Container.Label()) + "\t" }
		}
		fmt.Fprintln(w, termsafe.String(title))
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, columns)
		for i, g := range c.Generations {
			how := "running at the end"
			if g.End != 0 {
				how = g.Ended
				if g.KilledBy.PID != 0 {
					how += fmt.Sprintf(", after %s from %s(%d) %s", g.KilledWith, termsafe.String(g.KilledByComm), g.KilledBy.PID, g.KilledBy)
				}
			}
			fmt.Fprintf(tw, "%d\t%s%s\t%s\t%s\t%s\t%s\t%s\n", i+1, name(g), g.Container.ShortID(), g.InitPIDs, g.Init, instant(g.Start), instant(g.End), how)
		}
		tw.Flush()
		if len(c.Entries) > 0 {
			fmt.Fprintln(w, "\nENTERED")
		}
		for _, e := range c.Entries {
			fmt.Fprintf(w, "%s  %s %s entered generation %d from outside, forked by host PID %d\n", instant(e.Time), e.PIDs, e.Key, e.Generation+1, e.Enterer.PID)
			if a := e.AskedBy; a != nil {
				fmt.Fprintf(w, "  asked for by `%s`: %s(%d) %s, uid %d; evidence: %s\n", termsafe.String(a.Argv), a.Comm, a.Key.PID, a.Key, a.UID, a.Evidence)
			}
		}
		fmt.Fprintln(w)
	}
	for _, s := range stories {
		indent := strings.Repeat("  ", min(s.Depth, 50))
		fmt.Fprintf(w, "%sSTORY %s %s\n", indent, termsafe.String(s.Comm), s.Key)
		for _, f := range s.Facts {
			again := ""
			if f.Repeats > 0 {
				again = fmt.Sprintf(" (%d times)", f.Repeats+1)
			}
			fmt.Fprintf(w, "%s%s  %-8s  %s%s\n", indent, instant(f.Time), f.Kind, termsafe.String(f.Text), again)
		}
		if s.Dropped > 0 {
			fmt.Fprintf(w, "%s… and %d more facts\n", indent, s.Dropped)
		}
	}
}

// storyLine is one object of story -o json: a fact, a generation or an
// entry, in snake_case as the feed's lines are.
type storyLine struct {
	Type  string `json:"type"` // fact, generation, entry
	Time  string `json:"time,omitempty"`
	Key   string `json:"key,omitempty"`
	Comm  string `json:"comm,omitempty"`
	Depth int    `json:"depth,omitempty"`
	Fact  string `json:"fact,omitempty"`
	Text  string `json:"text,omitempty"`
	Other string `json:"other,omitempty"`
	Times int    `json:"times,omitempty"` // the same fact, told again right after

	Generation int    `json:"generation,omitempty"`
	ID         string `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	Init       string `json:"init,omitempty"`
	InitPIDs   string `json:"init_pids,omitempty"`
	PidNS      uint32 `json:"pidns,omitempty"`
	Ended      string `json:"ended,omitempty"`
	EndTime    string `json:"end,omitempty"`
	KilledBy   string `json:"killed_by,omitempty"`
	KilledWith string `json:"killed_with,omitempty"`

	PIDs    string `json:"pids,omitempty"`
	Enterer string `json:"entered_by,omitempty"`
	AskedBy *Asker `json:"asked_by,omitempty"`
}

// WriteJSON writes one JSON object per line: each generation and entry of
// a container, then each fact.
func (told *Told) WriteJSON(w io.Writer) {
	stories := told.Stories
	enc := json.NewEncoder(w)
	if c := told.Containers; c != nil {
		for i, g := range c.Generations {
			l := storyLine{Type: "generation", Generation: i + 1, Time: instant(g.Start), ID: g.Container.ID, Name: g.Container.Name,
				Init: g.Init.String(), InitPIDs: g.InitPIDs, PidNS: g.PidNS, Ended: g.Ended, KilledWith: g.KilledWith}
			if g.End != 0 {
				l.EndTime = instant(g.End)
			}
			if g.KilledBy.PID != 0 {
				l.KilledBy = g.KilledBy.String()
			}
			enc.Encode(l)
		}
		for _, e := range c.Entries {
			enc.Encode(storyLine{Type: "entry", Generation: e.Generation + 1, Time: instant(e.Time), Key: e.Key.String(),
				PIDs: e.PIDs, Enterer: e.Enterer.String(), AskedBy: e.AskedBy})
		}
	}
	for _, s := range stories {
		for _, f := range s.Facts {
			l := storyLine{Type: "fact", Time: instant(f.Time), Key: s.Key.String(), Comm: s.Comm, Depth: s.Depth, Fact: f.Kind, Text: f.Text}
			if f.Other.PID != 0 {
				l.Other = f.Other.String()
			}
			if f.Repeats > 0 {
				l.Times = f.Repeats + 1
			}
			enc.Encode(l)
		}
	}
}
