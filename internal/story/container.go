package story

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// Generation is one run of a container of the name asked about: `docker
// restart` keeps the ID and starts a new init; `docker rm` and `run
// --name` make a new ID.
type Generation struct {
	Container *events.Container
	Init      events.Key // the init of its pid namespace, or its first process
	InitPIDs  string     // the init's PIDs, host first: "12573/1"
	PidNS     uint32     // the pid namespace its init made; 0 for none of its own
	Start     int64      // its first event (Unix ns)
	End       int64      // its init's exit; 0 while it ran at the recording's end
	Ended     string     // how its init ended: "killed by signal 9 (SIGKILL)"
	// KilledBy sent the last signal that ends a process to its init, when
	// one was sent before it ended.
	KilledBy     events.Key
	KilledByComm string
	KilledWith   string
}

// Entry is a process that entered a generation's pid namespace from
// outside it (docker exec, kubectl exec, nsenter).
type Entry struct {
	Key        events.Key
	Time       int64
	PIDs       string
	Generation int // index into Generations
	Enterer    events.Key
	// AskedBy is the command on this host that asked for the entry, where
	// one did: its process, user, argv and why it is taken for it.
	AskedBy *Asker
}

// Asker is a command that asked a runtime for an entry.
type Asker struct {
	Key      events.Key `json:"key"`
	Comm     string     `json:"comm"`
	UID      uint32     `json:"uid"`
	Argv     string     `json:"argv"`
	Evidence string     `json:"evidence"`
}

// askWindow is how long before an entry a command may have asked for it.
const askWindow = 10e9

// maxAskers bounds the recent commands kept as candidates.
const maxAskers = 64

// Containers gathers the generations of the containers asked about (by
// --container or --pod) and the processes that entered them.
type Containers struct {
	// Selects reports whether a container is one asked about.
	Selects     func(*events.Container) bool
	Pod         *container.PodRef // --pod's, when a pod was asked about
	tree        *pidmap.Tree
	Generations []*Generation
	Entries     []Entry
	byInit      map[events.Key]int
	byID        map[string]int // the latest generation of an ID
	askers      []Asker
	askerTimes  []int64
}

// NewContainers follows the containers arg names as --container reads it
// (a name, NAMESPACE/POD/NAME, an ID or ID prefix; "": every container),
// in tree (the replay's).
func NewContainers(arg string, tree *pidmap.Tree) *Containers {
	c := newContainers(tree)
	if arg != "" {
		c.Selects = func(ctr *events.Container) bool { return ctr.Matches(arg) }
	}
	return c
}

// NewPodContainers follows the containers of pod ref, its sandbox's too.
func NewPodContainers(ref container.PodRef, tree *pidmap.Tree) *Containers {
	c := newContainers(tree)
	c.Selects, c.Pod = ref.Has, &ref
	return c
}

// Asked follows what --container (arg) or --pod (pod) asks about; every
// container without either.
func Asked(arg, pod string, tree *pidmap.Tree) (*Containers, error) {
	if pod == "" {
		return NewContainers(arg, tree), nil
	}
	ref, err := container.ParsePod(pod)
	if err != nil {
		return nil, err
	}
	return NewPodContainers(ref, tree), nil
}

func newContainers(tree *pidmap.Tree) *Containers {
	return &Containers{Selects: func(*events.Container) bool { return true }, tree: tree, byInit: map[events.Key]int{}, byID: map[string]int{}}
}

// Event takes one event of the replay, which the tree has applied.
func (c *Containers) Event(ev *events.Event) {
	key := events.Key{PID: ev.PID, Start: ev.StartBoot}
	if ev.Type == events.TypeExec && ev.Levels == 1 {
		c.noteAsker(ev, key)
	}
	if g, ok := c.byInit[key]; ok {
		c.initEvent(g, ev)
	}
	c.entry(ev, key)
	cg := ev.Cgroup
	if cg == nil || cg.Container == nil || !c.Selects(cg.Container) || ev.Type == events.TypeExit || ev.Thread {
		return
	}
	ctr := cg.Container
	g, known := c.byID[ctr.ID]
	switch {
	case ev.NSInit() && c.byInitOf(key) < 0 && known && c.Generations[g].PidNS == 0 && c.Generations[g].End == 0:
		// The runtime's first process in the cgroup came before the init
		// of the namespace it makes: the init stands for the generation.
		gen := c.Generations[g]
		delete(c.byInit, gen.Init)
		gen.Init, gen.InitPIDs, gen.PidNS = key, pids(ev), ev.PidNS[ev.Levels-1]
		c.byInit[key] = g
	case ev.NSInit() && c.byInitOf(key) < 0:
		// A new init: the first run of this ID, or a restart (whose pid
		// namespace may have the inode the last one had: the kernel
		// reuses them).
		g = c.add(&Generation{Container: ctr, Init: key, InitPIDs: pids(ev), PidNS: ev.PidNS[ev.Levels-1], Start: ev.Time})
	case !known || c.Generations[g].PidNS == 0 && c.Generations[g].End != 0:
		// Its first process stands for its init until one comes; a
		// container without a pid namespace of its own (--pid=host, a
		// member of a pod's shared one) has none, and one that ended and
		// runs again under its ID (docker restart) is a new generation.
		g = c.add(&Generation{Container: ctr, Init: key, InitPIDs: pids(ev), Start: ev.Time})
	}
}

// entry notes ev's subject when it was forked into a running generation's
// pid namespace from outside. It is told by the namespace, not the cgroup:
// a docker exec'd process joins the container's cgroup after its fork.
func (c *Containers) entry(ev *events.Event, key events.Key) {
	if ev.Type != events.TypeFork && ev.Type != events.TypeProc {
		return
	}
	p := c.tree.Subject(ev)
	if p == nil || !p.Entered() {
		return
	}
	for g := len(c.Generations) - 1; g >= 0; g-- {
		gen := c.Generations[g]
		if gen.PidNS != 0 && gen.PidNS == p.NS().Inode && gen.End == 0 {
			e := Entry{Key: key, Time: ev.Time, PIDs: pids(ev), Generation: g, Enterer: p.EnteredBy}
			e.AskedBy = c.asker(ev.Time, gen)
			c.Entries = append(c.Entries, e)
			return
		}
	}
}

func (c *Containers) byInitOf(k events.Key) int {
	if g, ok := c.byInit[k]; ok {
		return g
	}
	return -1
}

func (c *Containers) add(g *Generation) int {
	c.Generations = append(c.Generations, g)
	i := len(c.Generations) - 1
	c.byInit[g.Init] = i
	c.byID[g.Container.ID] = i
	return i
}

// initEvent notes what happens to generation i's init: the signals that
// end a process sent to it, and its exit.
func (c *Containers) initEvent(i int, ev *events.Event) {
	g := c.Generations[i]
	switch ev.Type {
	case events.TypeSignal:
		if n := ev.Sig.Number; n >= 1 && n <= 64 && events.EndingSignals&(1<<(n-1)) != 0 {
			g.KilledBy = events.Key{PID: ev.Sig.Sender.PID, Start: ev.Sig.Sender.StartBoot}
			g.KilledByComm = string(ev.Sig.Sender.Comm[:ev.Sig.Sender.CommLen])
			g.KilledWith = events.SignalName(ev.Sig.Number)
		}
	case events.TypeExit:
		if ev.Thread {
			return
		}
		if g.PidNS == 0 && strings.HasPrefix(string(ev.Comm[:ev.CommLen]), runcStage) {
			// runc's first process in the cgroup, or its second, leaves
			// once the next runs; the container's own process is the
			// oldest left.
			if p := c.tree.OldestIn(g.Container.ID); p != nil {
				delete(c.byInit, g.Init)
				g.Init, g.InitPIDs = events.Key{PID: p.PID, Start: p.Start}, p.PIDsFrom(0)
				c.byInit[g.Init] = i
				return
			}
		}
		g.End, g.Ended = ev.Time, events.WaitStatus(ev.ExitStatus).String()
	}
}

// runcStage begins the names runc gives its stages: runc:[0:PARENT] and
// runc:[1:CHILD] set a container up and exit; runc:[2:INIT] runs its
// command. Where the container has no pid namespace of its own, the first
// of them stands for its init until it exits.
const runcStage = "runc:["

// runtimeCLIs are the commands that ask a runtime to run a process in a
// container; nsenter does it itself.
var runtimeCLIs = []string{"docker", "podman", "nerdctl", "crictl", "kubectl", "ctr", "nsenter"}

// noteAsker keeps a host exec that may ask for an entry: a runtime's
// command line with exec in it, or nsenter.
func (c *Containers) noteAsker(ev *events.Event, key events.Key) {
	name := string(ev.Comm[:ev.CommLen])
	if !slices.Contains(runtimeCLIs, name) {
		return
	}
	argv := ev.Argv()
	if name != "nsenter" && !slices.Contains(argv, "exec") {
		return
	}
	if len(c.askers) == maxAskers {
		c.askers, c.askerTimes = c.askers[1:], c.askerTimes[1:]
	}
	c.askers = append(c.askers, Asker{Key: key, Comm: name, UID: ev.Cred.UID, Argv: strings.Join(argv, " ")})
	c.askerTimes = append(c.askerTimes, ev.Time)
}

// asker finds the latest command that asked, within askWindow before an
// entry at when into g, naming g's container (its name or an ID prefix)
// or, for nsenter, its init's host PID. nil when none did.
func (c *Containers) asker(when int64, g *Generation) *Asker {
	for i := len(c.askers) - 1; i >= 0; i-- {
		t := c.askerTimes[i]
		if t > when || when-t > askWindow {
			continue
		}
		a := c.askers[i]
		named := ""
		for _, word := range strings.Fields(a.Argv) {
			switch {
			case a.Comm == "nsenter" && (word == fmt.Sprint(g.Init.PID) || strings.HasSuffix(word, "="+fmt.Sprint(g.Init.PID))):
				named = "its target is the container's init, host PID " + word
			case a.Comm != "nsenter" && g.Container.Name != "" && word == g.Container.Name:
				named = "its argv names " + word
			case a.Comm != "nsenter" && len(word) >= 4 && strings.HasPrefix(g.Container.ID, word):
				named = "its argv names the container's ID " + word
			}
			if named != "" {
				break
			}
		}
		if named != "" {
			a.Evidence = fmt.Sprintf("%s, and it ran %.2f s before the entry", named, float64(when-t)/1e9)
			return &a
		}
	}
	return nil
}
