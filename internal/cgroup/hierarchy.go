// Package cgroup names the cgroups the kernel side reports by ID: which
// hierarchy to read (cgroup v2, or on a cgroup v1 host one controller's),
// and the path and container behind each ID.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Unified is Hierarchy.Subsys for the cgroup v2 hierarchy; the kernel side
// reads task->cgroups->dfl_cgrp (bpf/task.bpf.h: CGROUP_DFL).
const Unified = 0xffffffff

// Hierarchy is the cgroup hierarchy the kernel side reads IDs from.
type Hierarchy struct {
	// Subsys is Unified, or on cgroup v1 the controller's index in the
	// kernel's subsystem array (its row in /proc/cgroups).
	Subsys uint32
	// Controller names it: "" for cgroup v2, "pids" for example.
	Controller string
	// ID is the hierarchy's ID, /proc/cgroups' second column: 0 for
	// cgroup v2. The cgroup_mkdir records of this hierarchy carry it.
	ID uint32
	// Mount is where the hierarchy is mounted, and Root the cgroup mounted
	// there ("/" on a host; deeper in a cgroup namespace).
	Mount, Root string
}

// preferred are the cgroup v1 controllers read, best first: container
// runtimes put each container in a cgroup of its own in all of them.
var preferred = []string{"pids", "memory", "cpu", "cpuacct", "blkio", "devices", "freezer"}

// ErrNoHierarchy means no cgroup file system is mounted where nspidtrace
// can read it.
var ErrNoHierarchy = errors.New("no cgroup hierarchy is mounted")

// Detect chooses the hierarchy from procfs at procRoot: cgroup v1
// controllers where any are mounted (runtimes on a hybrid host leave the v2
// hierarchy empty), else cgroup v2.
func Detect(procRoot string) (Hierarchy, error) {
	mounts, err := os.ReadFile(filepath.Join(procRoot, "self/mountinfo"))
	if err != nil {
		return Hierarchy{}, err
	}
	subsys, err := os.ReadFile(filepath.Join(procRoot, "cgroups"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return Hierarchy{}, err
	}
	return choose(mounts, subsys)
}

// choose reads mountinfo and /proc/cgroups.
func choose(mountinfo, cgroups []byte) (Hierarchy, error) {
	v1 := map[string]Hierarchy{}
	var v2 *Hierarchy
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
		f := strings.Fields(sc.Text())
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 >= len(f) {
			continue
		}
		root, mount, fstype := unescape(f[3]), unescape(f[4]), f[sep+1]
		switch fstype {
		case "cgroup2":
			if v2 == nil || wider(root, v2.Root) {
				v2 = &Hierarchy{Subsys: Unified, Mount: mount, Root: root}
			}
		case "cgroup":
			for _, opt := range strings.Split(f[sep+3], ",") {
				if h, seen := v1[opt]; !seen || wider(root, h.Root) {
					v1[opt] = Hierarchy{Controller: opt, Mount: mount, Root: root}
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Hierarchy{}, err
	}
	for _, name := range preferred {
		h, ok := v1[name]
		if !ok {
			continue
		}
		idx, id, err := subsysIndex(cgroups, name)
		if err != nil {
			return Hierarchy{}, err
		}
		h.Subsys, h.ID = idx, id
		return h, nil
	}
	if v2 != nil {
		return *v2, nil
	}
	return Hierarchy{}, ErrNoHierarchy
}

// wider reports whether a mount of cgroup root shows more of the
// hierarchy than one of cgroup than: in a container given the host's
// cgroups (-v /sys:/sys), the runtime's mount of the container's own cgroup
// and the host's mount of "/" are both there, and only the host's names
// every cgroup.
func wider(root, than string) bool { return depth(root) < depth(than) }

// depth is how far below the reader's cgroup namespace root a mount's root
// is: 0 for "/", 2 for "/docker/ID", -1 for "/.." (above it).
func depth(root string) int {
	if up := strings.Count(root, "/.."); up > 0 {
		return -up
	}
	return len(strings.FieldsFunc(root, func(r rune) bool { return r == '/' }))
}

// subsysIndex finds a controller's index in the kernel's subsystem array
// (/proc/cgroups lists every subsystem built in, in that order) and the ID
// of the hierarchy it is on (the second column).
func subsysIndex(cgroups []byte, name string) (index, hierarchy uint32, err error) {
	for _, line := range strings.Split(string(cgroups), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			if len(f) > 1 {
				id, _ := strconv.ParseUint(f[1], 10, 32)
				hierarchy = uint32(id)
			}
			return index, hierarchy, nil
		}
		index++
	}
	return 0, 0, fmt.Errorf("/proc/cgroups does not list the %s controller", name)
}

// lineOf returns the path /proc/PID/cgroup (its content, data) gives for
// hierarchy h: the "0::PATH" line for cgroup v2, else the line whose
// controllers include h's.
func (h Hierarchy) lineOf(data []byte) (string, bool) {
	for line := range strings.Lines(string(data)) {
		// ID:CONTROLLERS:PATH; the path may hold ':'.
		_, rest, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		controllers, path, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 {
			continue
		}
		if h.Subsys == Unified && controllers == "" || h.Subsys != Unified && slices.Contains(strings.Split(controllers, ","), h.Controller) {
			return path, true
		}
	}
	return "", false
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// String describes the hierarchy for diagnostics.
func (h Hierarchy) String() string {
	if h.Subsys == Unified {
		return "cgroup v2 at " + h.Mount
	}
	return fmt.Sprintf("cgroup v1 %s controller at %s", h.Controller, h.Mount)
}
