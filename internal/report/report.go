// Package report makes `nspidtrace report`: one self-contained HTML file of
// a recording, to look at and to attach to a ticket. A timeline (a lane per
// container and pid namespace, a bar per process, its facts as markers,
// signals as arrows), the tree at any instant, the containers' generations
// and a search. The data is the recording's stories (internal/story), as
// JSON inside the page; the page fetches nothing, and its
// Content-Security-Policy forbids it to.
package report

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/source"
	"github.com/nspidtrace/nspidtrace/internal/story"
)

// Request is what report was asked for.
type Request struct {
	From         []string // --from
	Container    string   // --container: only its processes and generations
	Pod          string   // --pod: only its containers' processes and generations
	Since, Until string   // --since, --until: RFC 3339 or +offset; "" for the recording's start and end
}

// Data is what the page shows, as the page's script reads it. Times are
// milliseconds from Start (JavaScript's numbers hold no Unix nanoseconds).
type Data struct {
	Host    string  `json:"host"`
	Start   int64   `json:"start"` // Unix ms
	Span    float64 `json:"span"`  // ms
	Lanes   []Lane  `json:"lanes"`
	Procs   []Proc  `json:"procs"`
	Gens    []Gen   `json:"gens"`
	Dropped int     `json:"dropped"` // processes left out by the window or --container
}

// Lane groups processes by container and pid namespace.
type Lane struct {
	Name string `json:"name"`
}

// Proc is one process of the timeline.
type Proc struct {
	Key      string     `json:"k"`
	Parent   int        `json:"p"` // index into Procs, -1 for none shown
	Comm     string     `json:"c"`
	Argv     string     `json:"a"`
	PIDs     []uint32   `json:"i"` // at every level, host first
	PidNS    []uint32   `json:"n"` // the namespace of each level
	Lane     int        `json:"l"`
	Start    float64    `json:"s"`
	End      float64    `json:"e"` // -1: alive at the end
	Exit     string     `json:"x,omitempty"`
	Findings []string   `json:"f,omitempty"`
	Facts    [][]any    `json:"m"` // [time, kind, text, other's index or -1]
	key      events.Key `json:"-"`
}

// Gen is a container generation, as story --container tells it.
type Gen struct {
	Container string  `json:"c"`
	ID        string  `json:"id"`
	Init      string  `json:"init"`
	InitPIDs  string  `json:"pids"`
	Start     float64 `json:"s"`
	End       float64 `json:"e"`
	Ended     string  `json:"how"`
}

// Build replays the recording and gathers the page's data.
func Build(r Request, log zerolog.Logger) (*Data, error) {
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	collect := story.NewCollector(tree)
	collect.All = true
	ctrs, err := story.Asked(r.Container, r.Pod, tree)
	if err != nil {
		return nil, err
	}
	type seen struct {
		pids, pidns []uint32
		ctr         *events.Container
		container   string
		argv        string
		start, end  int64
		exit        string
	}
	procs := map[events.Key]*seen{}
	rep, err := source.Replay(r.From, "", log, tree, func(ev *events.Event, _ []byte) error {
		ctrs.Event(ev)
		collect.Event(ev)
		key := events.Key{PID: ev.PID, Start: ev.StartBoot}
		if key.PID == 0 || ev.Thread || ev.Type == events.TypeSignal {
			return nil
		}
		s := procs[key]
		if s == nil {
			s = &seen{start: ev.Time}
			procs[key] = s
		}
		if ev.Levels > 0 && ev.Type != events.TypeExit {
			s.pids, s.pidns = append(s.pids[:0], ev.NSPid[:ev.Levels]...), append(s.pidns[:0], ev.PidNS[:ev.Levels]...)
		}
		if ev.Cgroup != nil && ev.Cgroup.Container != nil {
			s.ctr, s.container = ev.Cgroup.Container, ev.Cgroup.Container.Label()
		}
		if (ev.Type == events.TypeExec || ev.Type == events.TypeProc) && ev.ArgsLen > 0 {
			s.argv = strings.Join(ev.Argv(), " ")
		}
		if ev.Type == events.TypeExit {
			s.end, s.exit = ev.Time, events.WaitStatus(ev.ExitStatus).String()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	since, until, err := window(r, rep)
	if err != nil {
		return nil, err
	}
	d := &Data{Start: since / 1e6, Span: float64(until-since) / 1e6, Lanes: []Lane{}, Procs: []Proc{}, Gens: []Gen{}}
	if rep.Header != nil {
		d.Host = rep.Header.Hostname
	}
	ms := func(t int64) float64 { return float64(t-since) / 1e6 }
	var wanted map[uint32]bool // --container, --pod: their generations' pid namespaces
	if r.Container != "" || r.Pod != "" {
		if len(ctrs.Generations) == 0 {
			return nil, fault.NotFound{Err: container.NotSeen(r.Container, r.Pod, "in the recording")}
		}
		wanted = map[uint32]bool{}
	}
	for _, g := range ctrs.Generations {
		if wanted != nil {
			wanted[g.PidNS] = g.PidNS != 0
		}
		end := -1.0
		if g.End != 0 {
			end = ms(g.End)
		}
		d.Gens = append(d.Gens, Gen{Container: g.Container.Label(), ID: g.Container.ShortID(), Init: g.Init.String(), InitPIDs: g.InitPIDs,
			Start: ms(g.Start), End: end, Ended: g.Ended})
	}
	index := map[events.Key]int{}
	lanes := map[string]int{}
	for _, st := range collect.Stories() {
		s := procs[st.Key]
		if s == nil || s.end != 0 && s.end < since || s.start > until {
			d.Dropped++
			continue
		}
		own := uint32(0)
		if len(s.pidns) > 0 {
			own = s.pidns[len(s.pidns)-1]
		}
		if wanted != nil && !wanted[own] && (s.ctr == nil || !ctrs.Selects(s.ctr)) {
			d.Dropped++
			continue
		}
		lane := "host"
		if s.container != "" {
			lane = "container " + s.container
		}
		if len(s.pidns) > 1 {
			lane += fmt.Sprintf(" pid:[%d]", own)
		}
		l, ok := lanes[lane]
		if !ok {
			l = len(d.Lanes)
			lanes[lane] = l
			d.Lanes = append(d.Lanes, Lane{Name: lane})
		}
		p := Proc{Key: st.Key.String(), Parent: -1, Comm: st.Comm, Argv: s.argv, PIDs: s.pids, PidNS: s.pidns, Lane: l,
			Start: ms(max(s.start, since)), End: -1, Exit: s.exit, key: st.Key}
		if s.end != 0 {
			p.End = ms(s.end)
		}
		index[st.Key] = len(d.Procs)
		d.Procs = append(d.Procs, p)
	}
	// Parents, facts and findings, once every process has its index.
	stories := collect.Stories()
	byKey := make(map[events.Key]*story.Story, len(stories))
	for _, st := range stories {
		byKey[st.Key] = st
	}
	for i := range d.Procs {
		p := &d.Procs[i]
		st := byKey[p.key]
		if pi, ok := index[st.Parent]; ok {
			p.Parent = pi
		}
		p.Facts = make([][]any, 0, len(st.Facts))
		for _, f := range st.Facts {
			if f.Time < since || f.Time > until {
				continue
			}
			other := -1
			if oi, ok := index[f.Other]; ok && f.Other.PID != 0 {
				other = oi
			}
			text := f.Text
			if f.Repeats > 0 {
				text += fmt.Sprintf(" (%d times)", f.Repeats+1)
			}
			p.Facts = append(p.Facts, []any{ms(f.Time), f.Kind, text, other})
			if f.Kind == "finding" {
				name, _, _ := strings.Cut(f.Text, ":")
				p.Findings = append(p.Findings, name)
			}
		}
	}
	slices.SortStableFunc(d.Lanes, func(a, b Lane) int { return cmp.Compare(a.Name, b.Name) })
	order := make(map[string]int, len(d.Lanes))
	for i, l := range d.Lanes {
		order[l.Name] = i
	}
	names := make([]string, len(lanes))
	for name, l := range lanes {
		names[l] = name
	}
	for i := range d.Procs {
		d.Procs[i].Lane = order[names[d.Procs[i].Lane]]
	}
	return d, nil
}

// window reads --since and --until against the recording.
func window(r Request, rep *pidmap.Replay) (since, until int64, err error) {
	since, until = rep.Start, rep.End
	for _, w := range []struct {
		flag, value string
		dst         *int64
	}{{"--since", r.Since, &since}, {"--until", r.Until, &until}} {
		if w.value == "" {
			continue
		}
		at, err := pidmap.ParseAt(w.value)
		if err != nil {
			return 0, 0, fault.Usagef("bad %s: %v", w.flag, err)
		}
		if *w.dst, err = rep.Instant(at); err != nil {
			return 0, 0, fault.NotFound{Err: fmt.Errorf("%s %w", w.flag, err)}
		}
	}
	if since >= until {
		return 0, 0, fault.Usagef("--since %s is not before --until %s", time.Unix(0, since).UTC().Format(time.RFC3339Nano), time.Unix(0, until).UTC().Format(time.RFC3339Nano))
	}
	return since, until, nil
}
