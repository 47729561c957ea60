package events

import "strings"

// Cgroup is the cgroup a process is in, and the container that makes it a
// member of. One value stands for one cgroup and is shared by every event
// and process in it; it is not changed once made.
type Cgroup struct {
	// ID is the cgroup's kernfs ID (the inode of its directory) in the
	// hierarchy the kernel side reads; 0 when read from a recording.
	ID uint64
	// Path is the cgroup's path in that hierarchy, as /proc/PID/cgroup
	// shows it; "" when the cgroup was gone before it could be named.
	Path string
	// Container is the container the cgroup belongs to; nil for none.
	Container *Container
	// Unresolved, when set, says why the cgroup or its container could
	// not be named when the event was read (the system was out of
	// descriptors or memory): what is missing is unknown, not absent.
	Unresolved string

	json []byte // the `cgroup` and `container` fields, encoded once
}

// Container is a container as its runtime names it. Every string but ID
// comes from files a container's user can influence: hostile input.
type Container struct {
	ID      string // 64 hexadecimal digits
	Name    string // "" when the runtime keeps it nowhere readable
	Runtime string // docker, containerd, cri-o, podman; "" when unknown
	Pod     *Pod   // Kubernetes pods; nil otherwise
}

// Pod is the Kubernetes pod a container runs in. UID comes from the cgroup
// path, the names from the runtime's state, when it keeps them.
type Pod struct {
	Namespace, Name, UID string
}

// NewCgroup returns the Cgroup of path (in a container or not), its JSON
// fields encoded once.
func NewCgroup(id uint64, path string, c *Container) *Cgroup {
	return NewUnresolved(id, path, c, "")
}

// NewUnresolved returns a Cgroup that could not be named (as far as it
// was: path and container may be known, a name not), and why.
func NewUnresolved(id uint64, path string, c *Container, why string) *Cgroup {
	cg := &Cgroup{ID: id, Path: path, Container: c, Unresolved: why}
	cg.json = cg.appendJSON(nil)
	return cg
}

// Label names the container for people: its name, or its short ID.
func (c *Container) Label() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ShortID()
}

// ShortID is the first 12 digits of the ID, as docker ps shows it.
func (c *Container) ShortID() string { return c.ID[:min(12, len(c.ID))] }

// Matches reports whether arg names the container as docker accepts it: its
// name, its full ID or a prefix of the ID; or, for a pod's container,
// NAMESPACE/POD/NAME.
func (c *Container) Matches(arg string) bool {
	return arg != "" && (c.NamedBy(arg) || strings.HasPrefix(c.ID, strings.ToLower(arg)))
}

// NamedBy reports whether arg is the container's name, or for a pod's
// container NAMESPACE/POD/NAME.
func (c *Container) NamedBy(arg string) bool {
	return arg != "" && (arg == c.Name || c.Pod != nil && arg == c.Qualified())
}

// Qualified names a pod's container as NAMESPACE/POD/NAME, which only it
// has at a time (two pods may each run a container called web); any
// other container by its name.
func (c *Container) Qualified() string {
	if c.Pod == nil {
		return c.Name
	}
	return c.Pod.Namespace + "/" + c.Pod.Name + "/" + c.Name
}

// SameNamed reports whether c and d are, for their users, one container
// started again (a restart, or rm and run under the same name): the same
// name, in the same pod where they are a pod's.
func (c *Container) SameNamed(d *Container) bool {
	return c.Name != "" && c.Qualified() == d.Qualified()
}

// In reports whether the cgroup is the container id's or below it (a
// nested runtime's container inside it is in it too). A cgroup in no
// container is in none, whatever its path holds: a runtime's monitor
// (libpod-conmon-ID.scope) runs beside its container, not in it.
func (cg *Cgroup) In(id string) bool {
	if cg == nil || cg.Container == nil || id == "" {
		return false
	}
	return cg.Container.ID == id || strings.Contains(cg.Path, id)
}

func (cg *Cgroup) appendJSON(buf []byte) []byte {
	if cg.Path != "" {
		buf = append(buf, `,"cgroup":`...)
		buf = appendString(buf, []byte(cg.Path))
	}
	if cg.Unresolved != "" {
		buf = append(buf, `,"attribution_error":`...)
		buf = appendString(buf, []byte(cg.Unresolved))
	}
	c := cg.Container
	if c == nil {
		return buf
	}
	buf = append(buf, `,"container":{"id":`...)
	buf = appendString(buf, []byte(c.ID))
	if c.Name != "" {
		buf = append(buf, `,"name":`...)
		buf = appendString(buf, []byte(c.Name))
	}
	if c.Runtime != "" {
		buf = append(buf, `,"runtime":`...)
		buf = appendString(buf, []byte(c.Runtime))
	}
	if p := c.Pod; p != nil {
		buf = append(buf, `,"pod":{`...)
		sep := ""
		for _, f := range [...]struct{ key, val string }{{"namespace", p.Namespace}, {"name", p.Name}, {"uid", p.UID}} {
			if f.val != "" {
				buf = append(buf, sep...)
				buf = append(buf, '"')
				buf = append(buf, f.key...)
				buf = append(buf, `":`...)
				buf = appendString(buf, []byte(f.val))
				sep = ","
			}
		}
		buf = append(buf, '}')
	}
	return append(buf, '}')
}
