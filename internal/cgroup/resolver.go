package cgroup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/container"
	"github.com/nspidtrace/nspidtrace/internal/events"
)

// fileIDKernfs is the file handle type of kernfs (include/linux/exportfs.h:
// FILEID_KERNFS): the handle of a cgroup directory is its 64-bit ID.
const fileIDKernfs = 0xfe

// maxCached bounds the cgroups a Resolver remembers: a host that makes and
// removes cgroups endlessly costs memory only up to it.
const maxCached = 1 << 14

// rescanEvery bounds how often the directory walk (used where file handles
// are refused) runs again to find an ID it has not seen.
const rescanEvery = time.Second

// Resolver names cgroup IDs of one hierarchy, with their containers. It
// implements events.CgroupResolver. It is not safe for concurrent use.
type Resolver struct {
	h     Hierarchy
	state container.State
	mount *os.File
	byID  map[uint64]*events.Cgroup

	// walk: where open_by_handle_at is refused (it needs
	// CAP_DAC_READ_SEARCH), IDs are found by walking the hierarchy.
	walk     bool
	walked   map[uint64]string
	lastWalk time.Time

	unresolved atomic.Uint64

	// missed holds when an ID was last not found: asked again, but not
	// more often than retryMissed (see Cgroup).
	missed map[uint64]time.Time

	// made holds the paths of cgroups the kernel side saw made (Made),
	// until they are looked up: a reader that falls behind (a loaded
	// machine) reads the records of a short container after its cgroup
	// is gone, which no file handle opens then.
	made     map[uint64]string
	cgroupNS uint32 // ours: made's paths are relative to its root
	// named holds the containers named so far, by ID: a container's
	// cgroup made again (docker restart) is named as it was when its
	// runtime's files are gone by the time its records are read.
	named map[string]*events.Container
}

// maxMade bounds the made cgroups waiting to be looked up: those of
// cgroups whose processes never have a record (a systemd slice, say).
const maxMade = 1 << 12

// retryMissed is how soon an ID not found is looked up again.
const retryMissed = 100 * time.Millisecond

// NewResolver opens hierarchy h. Names are read from the runtimes' state
// under hostRoot ("/" on the host).
func NewResolver(h Hierarchy, hostRoot string) (*Resolver, error) {
	m, err := os.Open(h.Mount)
	if err != nil {
		return nil, err
	}
	var ns unix.Stat_t
	unix.Stat("/proc/self/ns/cgroup", &ns) // unreadable: 0, which no record has, and Made learns nothing
	return &Resolver{h: h, state: container.State{Root: hostRoot}, mount: m, byID: make(map[uint64]*events.Cgroup),
		missed: map[uint64]time.Time{}, made: map[uint64]string{}, cgroupNS: uint32(ns.Ino), named: map[string]*events.Container{}}, nil
}

// Made takes a cgroup the kernel side saw made (events.CgroupLearner): if
// it is gone when its processes' records are read, it is named from path.
// Only paths of r's hierarchy made in r's own cgroup namespace are taken:
// others are relative to another root than the one r's paths are.
func (r *Resolver) Made(id uint64, hierarchy, cgroupNS uint32, path string) {
	if hierarchy != r.h.ID || cgroupNS != r.cgroupNS || r.h.Root != "/" || !strings.HasPrefix(path, "/") {
		return
	}
	if len(r.made) >= maxMade {
		clear(r.made)
	}
	r.made[id] = path
}

// errOutsideView means a cgroup is not below the one mounted where the
// resolver reads (a container's view of the hierarchy): its path and
// container cannot be told from here.
var errOutsideView = errors.New("outside the cgroup hierarchy visible here")

// OutsideViewNote is what a line says of a cgroup outside the view.
const OutsideViewNote = "outside the cgroup hierarchy mounted here (a container's view of it): run nspidtrace on the host, or mount the host's hierarchy, to name it"

// Close releases the hierarchy.
func (r *Resolver) Close() error { return r.mount.Close() }

// Hierarchy is the hierarchy r names cgroups of.
func (r *Resolver) Hierarchy() Hierarchy { return r.h }

// Cgroup returns the cgroup with kernfs ID id, its path "" when it is gone.
// The first call for an ID finds its path and reads its container's name;
// later ones return the same value.
//
// Where the system is out of descriptors or memory, what could be named is
// returned marked Unresolved, and not kept: the next event of the cgroup
// asks again. Unresolved counts them.
func (r *Resolver) Cgroup(id uint64) *events.Cgroup {
	if cg, ok := r.byID[id]; ok {
		return cg
	}
	if t, ok := r.missed[id]; ok && time.Since(t) < retryMissed {
		return events.NewCgroup(id, "", nil)
	}
	path, err := r.path(id)
	if made, ok := r.made[id]; ok && err != nil && !container.Exhausted(err) {
		return r.remember(id, made) // gone already: named where it was made
	}
	switch {
	case errors.Is(err, syscall.ESTALE) || errors.Is(err, fs.ErrNotExist):
		// Not found: gone, or not yet there to be found (a cgroup a
		// runtime makes again under the same path as it restarts a
		// container reads as stale for a moment). Not kept: a later
		// event asks again.
		if len(r.missed) >= maxCached {
			clear(r.missed)
		}
		r.missed[id] = time.Now()
		return events.NewCgroup(id, "", nil)
	case container.Exhausted(err):
		r.unresolved.Add(1)
		return events.NewUnresolved(id, "", nil, "cgroup path: "+err.Error())
	case errors.Is(err, errOutsideView):
		// Kept: it stays outside. Never guessed as the view's own.
		cg := events.NewUnresolved(id, "", nil, OutsideViewNote)
		r.keep(id, cg)
		return cg
	}
	return r.remember(id, path)
}

// Partial reports whether the hierarchy visible here is a part of the
// host's (a container's view): cgroups outside it are not named.
func (r *Resolver) Partial() bool { return r.h.Root != "/" }

// Unresolved counts the cgroups that could not be named for want of
// descriptors or memory. Safe to call from any goroutine.
func (r *Resolver) Unresolved() uint64 { return r.unresolved.Load() }

// remember names the cgroup id at path with its container and keeps it.
func (r *Resolver) remember(id uint64, path string) *events.Cgroup {
	var c *events.Container
	if path != "" {
		if c = container.Identify(path); c != nil {
			if err := r.state.NameErr(c); err != nil {
				r.unresolved.Add(1)
				return events.NewUnresolved(id, path, c, "container name: "+err.Error())
			}
			r.nameAsBefore(c)
		}
	}
	cg := events.NewCgroup(id, path, c)
	r.keep(id, cg)
	delete(r.missed, id)
	delete(r.made, id)
	return cg
}

// nameAsBefore names c as the container of its ID was named before, when
// its runtime's files name it no more (gone with it); and remembers its
// name when they do.
func (r *Resolver) nameAsBefore(c *events.Container) {
	if c.Name == "" {
		if before, ok := r.named[c.ID]; ok {
			c.Name, c.Runtime, c.Pod = before.Name, before.Runtime, before.Pod
		}
		return
	}
	if len(r.named) >= maxCached {
		clear(r.named)
	}
	r.named[c.ID] = c
}

// keep remembers cg as the cgroup id.
func (r *Resolver) keep(id uint64, cg *events.Cgroup) {
	if len(r.byID) >= maxCached {
		clear(r.byID)
	}
	r.byID[id] = cg
}

// OfProcess returns the cgroup of process pid in r's hierarchy, as
// procfs at procRoot shows it (/proc/PID/cgroup): the same value Cgroup
// gives for the ID the kernel side reads, found without BPF.
func (r *Resolver) OfProcess(procRoot string, pid int) (*events.Cgroup, error) {
	data, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, err
	}
	path, ok := r.h.lineOf(data)
	if !ok {
		return nil, fmt.Errorf("/proc/%d/cgroup has no line for %s", pid, r.h)
	}
	below, ok := strings.CutPrefix(path, r.h.Root)
	if !ok || r.h.Root != "/" && below != "" && below[0] != '/' {
		return nil, fmt.Errorf("cgroup %s of process %d is not below the mounted %s", path, pid, r.h.Root)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(r.h.Mount, below), &st); err != nil {
		return nil, fmt.Errorf("cgroup of process %d: %w", pid, err)
	}
	if cg, ok := r.byID[st.Ino]; ok {
		return cg, nil
	}
	return r.remember(st.Ino, path), nil
}

// path finds the cgroup path of id: the directory its file handle opens,
// relative to the mount and below the mounted root.
func (r *Resolver) path(id uint64) (string, error) {
	if !r.walk {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], id)
		fd, err := unix.OpenByHandleAt(int(r.mount.Fd()), unix.NewFileHandle(fileIDKernfs, b[:]), unix.O_PATH|unix.O_CLOEXEC)
		if err == nil {
			dir, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
			unix.Close(fd)
			if err != nil {
				return "", err
			}
			// A cgroup the mount does not reach (the mount is a
			// container's view of the hierarchy) opens as a directory
			// no path leads to, which reads as "/": it is not below the
			// view's own cgroup, whatever relative would make of it.
			if dir != r.h.Mount && !strings.HasPrefix(dir, r.h.Mount+"/") {
				return "", errOutsideView
			}
			return r.relative(dir), nil
		}
		if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EOPNOTSUPP) && !errors.Is(err, syscall.ENOSYS) {
			return "", err // ESTALE: the cgroup is gone
		}
		r.walk = true
	}
	if p, ok := r.walked[id]; ok {
		return p, nil
	}
	if time.Since(r.lastWalk) < rescanEvery {
		return "", fs.ErrNotExist
	}
	r.lastWalk = time.Now()
	r.walked = make(map[uint64]string)
	filepath.WalkDir(r.h.Mount, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				r.walked[st.Ino] = r.relative(p)
			}
		}
		return nil
	})
	if p, ok := r.walked[id]; ok {
		return p, nil
	}
	return "", fs.ErrNotExist
}

// relative turns a directory under the mount into the cgroup's path as
// /proc/PID/cgroup shows it.
func (r *Resolver) relative(dir string) string {
	rel := strings.TrimPrefix(dir, r.h.Mount)
	if rel == "" {
		rel = "/"
	}
	return filepath.Join(r.h.Root, rel)
}
