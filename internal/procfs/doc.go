// Package procfs reads the kernel's own truth about processes from /proc:
// every level of a process's PIDs and pid namespaces, namespace references
// (--pidns REF) and the container a process's cgroup belongs to.
package procfs
