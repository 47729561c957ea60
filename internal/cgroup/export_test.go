package cgroup

// ForceWalk makes r find IDs by walking the hierarchy, as where file
// handles are refused.
func ForceWalk(r *Resolver) { r.walk = true }
