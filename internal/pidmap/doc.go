// Package pidmap is the multi-level process tree: every live process's PID
// at each pid-namespace level, its parent and its namespaces, kept true by
// applying events from the live kernel (Follower) or a recording (Replay).
package pidmap
