package loader

import (
	"sync"

	"github.com/nspidtrace/nspidtrace/internal/cgroup"
)

// Hierarchy is the cgroup hierarchy the kernel side reads cgroup IDs from,
// chosen once per run (cgroup.Detect): resolve IDs against it. When none is
// mounted, the error says so, and records carry cgroup v2 IDs.
var Hierarchy = sync.OnceValues(func() (cgroup.Hierarchy, error) {
	return cgroup.Detect("/proc")
})

// cgroupSubsys is the cgroup_subsys knob: where Hierarchy points.
func cgroupSubsys() uint32 {
	h, err := Hierarchy()
	if err != nil {
		return cgroup.Unified
	}
	return h.Subsys
}
