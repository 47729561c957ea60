package container

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
)

// ErrNoContainer means no container matches a --container argument.
var ErrNoContainer = errors.New("no running container matches")

// ErrAmbiguous means a name or ID prefix that several containers share.
var ErrAmbiguous = errors.New("ambiguous")

// Select returns the container of cs that arg names, as docker resolves
// one: a full ID, a name (NAMESPACE/POD/NAME for a pod's), else a unique
// prefix of an ID. Several values of one ID (a restarted container's
// cgroups) are one container. A name several containers have (web, in two
// pods) is ambiguous, and the error names each.
func Select(cs []*events.Container, arg string) (*events.Container, error) {
	if arg == "" {
		return nil, fmt.Errorf("%w %q", ErrNoContainer, arg)
	}
	for _, c := range cs {
		if c.ID == arg {
			return c, nil
		}
	}
	if named := Named(cs, arg); len(named) > 0 {
		if err := OneNamed(named, arg); err != nil {
			return nil, err
		}
		return named[0], nil
	}
	var found []*events.Container
	for _, c := range cs {
		if c.Matches(arg) && !containsID(found, c.ID) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q: no name, ID or ID prefix among the %d containers with processes (%s)", ErrNoContainer, arg, countIDs(cs), runtimes(cs))
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("container %q: %w: an ID prefix of %s, %s, …", arg, ErrAmbiguous, found[0].ShortID(), found[1].ShortID())
}

// Named returns the containers of cs that arg names (NamedBy), each ID once.
func Named(cs []*events.Container, arg string) []*events.Container {
	var named []*events.Container
	for _, c := range cs {
		if c.NamedBy(arg) && !containsID(named, c.ID) {
			named = append(named, c)
		}
	}
	return named
}

// OneNamed says whether the containers arg names are one container for
// their users (SameNamed: the same name in the same pod), and if not,
// which they are, as an error asking for NAMESPACE/POD/NAME.
func OneNamed(named []*events.Container, arg string) error {
	for _, c := range named[1:] {
		if !c.SameNamed(named[0]) {
			list := make([]string, len(named))
			for i, c := range named {
				list[i] = c.Qualified() + " (" + c.ShortID() + ")"
			}
			sort.Strings(list)
			return fmt.Errorf("container %q: %w: %d containers have that name: %s; give NAMESPACE/POD/NAME",
				arg, ErrAmbiguous, len(named), strings.Join(list, ", "))
		}
	}
	return nil
}
func containsID(cs []*events.Container, id string) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}

func countIDs(cs []*events.Container) int {
	var seen []*events.Container
	for _, c := range cs {
		if !containsID(seen, c.ID) {
			seen = append(seen, c)
		}
	}
	return len(seen)
}

// runtimes says what was searched: the state of Docker, containerd, CRI-O
// and Podman, and the runtimes found.
func runtimes(cs []*events.Container) string {
	set := map[string]bool{}
	for _, c := range cs {
		if c.Runtime != "" {
			set[c.Runtime] = true
		}
	}
	names := make([]string, 0, len(set))
	for r := range set {
		names = append(names, r)
	}
	sort.Strings(names)
	searched := "searched the cgroups of every process and the names Docker, containerd, CRI-O and Podman keep on disk"
	if len(names) == 0 {
		return searched
	}
	return searched + "; runtimes seen: " + strings.Join(names, ", ")
}

// NotSeen says that no container --container (arg) or --pod (pod) names
// was seen where: "in the recording", "running".
func NotSeen(arg, pod, where string) error {
	if pod != "" {
		return fmt.Errorf("--pod %s: no container of that pod %s", pod, where)
	}
	return fmt.Errorf("--container %s: no container of that name, ID or ID prefix %s", arg, where)
}

// ErrNoPod means no pod with processes has the name --pod gives.
var ErrNoPod = errors.New("no running pod matches")

// PodRef is a pod as Kubernetes users name it: NAMESPACE/NAME.
type PodRef struct{ Namespace, Name string }

func (r PodRef) String() string { return r.Namespace + "/" + r.Name }

// Has reports whether c is one of the pod's containers (its sandbox too).
func (r PodRef) Has(c *events.Container) bool {
	return c != nil && c.Pod != nil && c.Pod.Namespace == r.Namespace && c.Pod.Name == r.Name
}

// ParsePod reads --pod's NAMESPACE/NAME; anything else is a usage error.
func ParsePod(arg string) (PodRef, error) {
	ns, name, ok := strings.Cut(arg, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		hint := ""
		if strings.Count(arg, "/") == 2 {
			hint = "; one container of a pod is --container NAMESPACE/POD/NAME"
		}
		return PodRef{}, fault.Usagef("--pod %q: give NAMESPACE/NAME, as kubectl -n NAMESPACE get pod NAME names it%s", arg, hint)
	}
	return PodRef{ns, name}, nil
}

// SelectPod returns the containers of cs that are the pod's, each ID once;
// the pod's UID, which a pod made again under its name changes, must be
// one. Not found, the error names the pods there are.
func SelectPod(cs []*events.Container, ref PodRef) ([]*events.Container, error) {
	var found []*events.Container
	pods := map[string]bool{}
	unnamed := map[string]bool{} // pods known by their cgroups' UID alone
	for _, c := range cs {
		switch {
		case c.Pod != nil && c.Pod.Name != "":
			pods[c.Pod.Namespace+"/"+c.Pod.Name] = true
		case c.Pod != nil && c.Pod.UID != "":
			unnamed[c.Pod.UID] = true
		}
		if ref.Has(c) && !containsID(found, c.ID) {
			found = append(found, c)
		}
	}
	if len(found) == 0 {
		names := make([]string, 0, len(pods))
		for p := range pods {
			names = append(names, p)
		}
		sort.Strings(names)
		seen := "no pod has processes"
		if len(names) > 0 {
			seen = "pods with processes: " + strings.Join(names, ", ")
		}
		if len(unnamed) > 0 {
			// The kubepods cgroups say there are pods, the runtime's
			// files not their names: run in a container without them.
			seen += fmt.Sprintf("; pods known only by their cgroups' UID: %d, the runtime's state that names them is not readable here; in a container, mount it at the host's path, as docs/kubernetes.md says", len(unnamed))
		}
		return nil, fmt.Errorf("%w %q: searched the Kubernetes names containerd, CRI-O and dockershim keep on disk for the containers of every process (%s)", ErrNoPod, ref.String(), seen)
	}
	for _, c := range found[1:] {
		if c.Pod.UID != found[0].Pod.UID {
			return nil, fmt.Errorf("pod %q: %w: two pods of that name run, UIDs %s and %s", ref.String(), ErrAmbiguous, found[0].Pod.UID, c.Pod.UID)
		}
	}
	return found, nil
}
